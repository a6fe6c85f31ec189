"""The machine-wide PostgreSQL template: reused across clusters, never carrying a cluster's secret."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from streamctl.backends.local import pg_template
from tests.support.cluster import traversable_tmpdir

pytestmark = [pytest.mark.redis]


def _files_contain(root: Path, needle: bytes) -> bool:
    return any(needle in p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_two_clusters_share_one_template_but_not_their_passwords(make_cluster: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    home = traversable_tmpdir()  # the unprivileged server user must reach the cache (pytest's tmp is 0700)
    cache = home / "templates"
    monkeypatch.setenv(pg_template.CACHE_ENV, str(cache))
    a = make_cluster(analytics=False, fdw=False, replicas=0, redis=False)
    b = make_cluster(analytics=False, fdw=False, replicas=0, redis=False)
    a.up()
    made = sorted(p.name for p in cache.iterdir() if p.name.startswith("pg-"))
    assert len(made) == 1
    stamp = (cache / made[0] / "PG_VERSION").stat().st_mtime_ns
    b.up()
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith("pg-")) == made  # reused, not redone
    assert (cache / made[0] / "PG_VERSION").stat().st_mtime_ns == stamp
    pw_a, pw_b = a.ctx.secrets["postgres_password"], b.ctx.secrets["postgres_password"]
    assert pw_a != pw_b
    for secret in (pw_a, pw_b):
        assert not _files_contain(cache, secret.encode())
    ep_a, ep_b = a.ctx.endpoint("coordinator"), b.ctx.endpoint("coordinator")
    user = a.topology.pg_user
    with psycopg.connect(host=ep_a.host, port=ep_a.port, user=user, password=pw_a, dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=ep_b.host, port=ep_b.port, user=user, password=pw_a, dbname="postgres")
    shutil.rmtree(home, ignore_errors=True)


def test_a_new_node_has_its_database_already_and_no_spare(make_cluster: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's spare database becomes the node's own database at creation, so `up` creates none."""
    from streamctl.backends.base import Action

    home = traversable_tmpdir()
    monkeypatch.setenv(pg_template.CACHE_ENV, str(home / "templates"))
    c = make_cluster(analytics=False, fdw=False, replicas=0, redis=False)
    coordinator = c.ctx.topology.node("coordinator")
    assert coordinator is not None and coordinator.database
    c.backend.preflight([coordinator])
    c.ctx.create_secrets()
    c.ctx.store.record_endpoints(c.backend.name, [c.backend.endpoint(coordinator)])
    c.backend.apply(coordinator, Action.CREATE)  # the node alone: no configuration step has run
    c.backend.readiness(coordinator).wait()
    with c.ctx.pg_connect("coordinator", "postgres") as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")}
    assert names == {"postgres", coordinator.database}
    steps = [s for s in c.runner.config_steps() if s.name == "database"]
    assert [s.pending() for s in steps] == [[]]
    c.backend.remove(coordinator, volumes=True)
    shutil.rmtree(home, ignore_errors=True)


def test_key_changes_with_superuser_and_binary(tmp_path: Path) -> None:
    from streamctl.backends.local.privileges import RunAs
    from streamctl.backends.local.recipes import find_pg_bindir

    bindir = find_pg_bindir(None)
    me = RunAs(None, 0, 0)
    base = pg_template.template_key(bindir, "streamctl", me)
    assert base == pg_template.template_key(bindir, "streamctl", me)
    assert base != pg_template.template_key(bindir, "someone_else", me)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "postgres").symlink_to(bindir / "postgres")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "postgres").write_bytes((bindir / "postgres").read_bytes())
    (copy / "postgres").chmod(0o755)
    assert pg_template.template_key(fake, "streamctl", me) == base  # same binary through a symlink
    assert pg_template.template_key(copy, "streamctl", me) != base  # another binary file


def test_roles_made_in_a_copy_before_its_server_runs_log_in_and_an_error_shows_none_of_their_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ha a group's first member is a copy of the template with Patroni's roles made in the same
    single-user backend as the superuser's password (ha/roles.py): they log in once the server runs; when a
    statement fails, the error's lines carry none of the secrets those statements hold."""
    import subprocess

    from streamctl.backends.local.privileges import resolve_run_as
    from streamctl.backends.local.recipes import find_pg_bindir
    from streamctl.errors import BackendError
    from streamctl.ha.roles import patroni_roles_statements
    from streamctl.names import HA_REPLICATION_USER, HA_REWIND_USER
    from tests.support.ports import free_port

    home = traversable_tmpdir()
    monkeypatch.setenv(pg_template.CACHE_ENV, str(home / "templates"))
    bindir, run_as = find_pg_bindir(None), resolve_run_as(None)
    template = pg_template.ensure_template(bindir, "streamctl", lambda argv: subprocess.run(
        argv, check=True, capture_output=True, **run_as.subprocess_kwargs()), run_as)
    secrets = {"replication_password": "re'pl \\ x", "rewind_password": 'rew"ind'}
    hidden = tuple(secrets.values())
    broken = home / "broken"
    shutil.copytree(template, broken, symlinks=True)
    run_as.chown_tree(broken)
    with pytest.raises(BackendError) as failed:
        pg_template.personalise(bindir, broken, "streamctl", "super'pw", None, run_as, pg_template.Statements(
            (*patroni_roles_statements(secrets), "SELECT no_such_function()", f"SELECT '{hidden[0]}'::int"), hidden))
    shown = str(failed.value) + "\n".join(failed.value.details)
    assert not any(s in shown for s in (*hidden, "super'pw")), shown
    data = home / "data"
    shutil.copytree(template, data, symlinks=True)
    run_as.chown_tree(data)
    pg_template.personalise(bindir, data, "streamctl", "super'pw", None, run_as,
                            pg_template.Statements(tuple(patroni_roles_statements(secrets)), hidden))
    port = free_port()
    with (data / "pg_hba.conf").open("a") as fh:
        fh.write("host replication all 127.0.0.1/32 scram-sha-256\n")
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True, **run_as.subprocess_kwargs())
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=HA_REWIND_USER, password=secrets["rewind_password"],
                             dbname="postgres") as conn:  # pg_rewind's reads, granted
            assert conn.execute("SELECT count(*) > 0 FROM pg_ls_dir('.', true, false)").fetchone() == (True,)
        with psycopg.connect(host="127.0.0.1", port=port, user=HA_REPLICATION_USER, dbname="postgres",
                             password=secrets["replication_password"], replication="database") as conn:
            assert conn.execute("IDENTIFY_SYSTEM").fetchone() is not None
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True,
                       **run_as.subprocess_kwargs())
        shutil.rmtree(home, ignore_errors=True)
