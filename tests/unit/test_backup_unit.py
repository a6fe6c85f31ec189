"""The backup section's validation, pgBackRest's configuration for an S3 repository (rendered, not run:
no object store here), verify's archiving verdict, how a timestamp resolves to a restore point, and a
restored cluster's ha layout."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamctl.backup.catalog import BackupSet, set_for_time
from streamctl.config.load import parse_topology
from streamctl.errors import ConfigError, NotFoundError, RefusedError
from streamctl.verify.backup import judge
from streamctl.verify.result import Status

S3 = {"endpoint": "minio.internal:9000", "bucket": "backups", "key": "${S3_KEY}", "key_secret": "${S3_SECRET}"}


def errors(data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_topology(data, env=env or {})
    return info.value.details


def test_backup_is_off_by_default_and_turns_archiving_on_for_primaries_only() -> None:
    t = parse_topology({})
    assert t.backup is None and not t.backup_on
    assert all(dict(n.settings).get("archive_mode") is None for n in t.nodes() if n.is_postgres)
    t = parse_topology({"backup": {"repository": {"path": "repo"}}})
    modes = {n.name: dict(n.settings).get("archive_mode") for n in t.nodes() if n.is_postgres}
    assert modes == {"coordinator": "on", "worker-1": "on", "worker-2": "on", "analytics-primary": "on",
                     "analytics-replica-1": None}
    assert not parse_topology({"backup": {"enabled": False, "repository": {"path": "r"}}}).backup_on


@pytest.mark.parametrize(("section", "expected"), [
    ({}, "backup.repository: this key is required"),
    ({"repository": {}}, "backup.repository: give exactly one of `path`"),
    ({"repository": {"path": "r", "s3": S3}}, "backup.repository: give exactly one of `path`"),
    ({"repository": {"path": "r"}, "compression": "xz"}, "backup.compression: expected 'none', 'lz4'"),
    ({"repository": {"path": "r"}, "retention_full": 0}, "backup.retention_full:"),
    ({"repository": {"path": "r"}, "parallelism": 0}, "backup.parallelism:"),
    ({"repository": {"s3": {"bucket": "b"}}}, "backup.repository.s3.endpoint: this key is required"),
    ({"repository": {"path": "r"}, "colour": "red"}, "backup.colour: unknown key"),
])
def test_bad_backup_sections_are_refused_with_their_yaml_path(section: dict, expected: str) -> None:
    found = errors({"backup": section}, {"S3_KEY": "k", "S3_SECRET": "s"})
    assert any(expected in e for e in found), found


def test_backup_on_swarm_needs_a_directory_repository_and_tls() -> None:
    swarm = {"backend": "swarm", "bind": "0.0.0.0"}
    assert parse_topology({**swarm, "backup": {"repository": {"path": "r"}}}, env={}).backup_on
    found = errors({**swarm, "backup": {"repository": {"s3": S3}}}, {"S3_KEY": "k", "S3_SECRET": "s"})
    assert any("on Swarm the repository is a directory on the manager" in e for e in found), found
    found = errors({**swarm, "tls": False, "backup": {"repository": {"path": "r"}}})
    assert any("backups need tls" in e for e in found), found
    assert parse_topology({"backend": "docker", "backup": {"repository": {"path": "r"}}}, env={}).backup_on


def test_s3_keys_come_from_the_environment() -> None:
    found = errors({"backup": {"repository": {"s3": S3}}})
    assert any("backup.repository.s3.key: environment variable S3_KEY is not set" in e for e in found), found


@pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed")
def test_s3_repository_is_rendered_into_pgbackrest_config(tmp_path: Path) -> None:
    from streamctl.backends.local.backend import LocalBackend
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.context import ClusterContext

    t = parse_topology({"cluster": "s3c", "state_dir": str(tmp_path), "analytics": {"enabled": False},
                        "fdw": {"enabled": False}, "backup": {"repository": {"s3": S3}, "retention_diff": 3,
                                                             "compression": "zst", "parallelism": 4}},
                       env={"S3_KEY": "AKIA1", "S3_SECRET": "sekrit"})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    text = PgBackRest(ctx, LocalBackend(ctx)).render()
    for line in ("repo1-type=s3", "repo1-s3-endpoint=minio.internal:9000", "repo1-s3-bucket=backups",
                 "repo1-s3-key=AKIA1", "repo1-s3-key-secret=sekrit", "repo1-path=/streamctl",
                 "repo1-retention-diff=3", "compress-type=zst", "process-max=4", "[s3c-coordinator]",
                 "[s3c-worker-2]"):
        assert line in text.splitlines(), line


def test_docker_config_names_the_paths_inside_the_containers(tmp_path: Path) -> None:
    """On Docker, pgBackRest runs in each node's container: PGDATA, the container's port and socket, the
    repository at its mount point, its own files in the node's volume (no engine is asked to render)."""
    from streamctl.backends.docker.backend import DockerBackend
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.context import ClusterContext

    t = parse_topology({"cluster": "dk", "backend": "docker", "state_dir": str(tmp_path),
                        "analytics": {"enabled": False}, "fdw": {"enabled": False},
                        "backup": {"repository": {"path": "repo"}}}, env={})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    tool = PgBackRest(ctx, DockerBackend(ctx))
    lines = tool.render().splitlines()
    for line in ("repo1-path=/var/lib/pgbackrest-repo", "log-path=/var/lib/postgresql/data/pgbackrest/log",
                 "[dk-coordinator]", "pg1-path=/var/lib/postgresql/data/pgdata", "pg1-port=5432",
                 "pg1-socket-path=/var/run/postgresql"):
        assert line in lines, line
    assert tool.archive_command("dk-coordinator").startswith(
        "pgbackrest --config=/var/lib/postgresql/data/pgbackrest/pgbackrest.conf --stanza=dk-coordinator ")
    assert t.backup is not None and t.backup.repository_dir(tmp_path) == tmp_path / "repo"


def test_docker_config_under_ha_lists_the_member_pgbackrest_runs_in(tmp_path: Path) -> None:
    """Under HA on Docker each member's container holds the same file: its stanza names one PostgreSQL, the
    member's own data at Patroni's path (no pg2: another container's data is out of reach), and Patroni's
    archive_command pushes with that file into the group's stanza."""
    from streamctl.backends.docker.backend import DockerBackend
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.config.members import ha_groups
    from streamctl.context import ClusterContext
    from streamctl.ha.patroni import MemberPaths, archive_parameters

    t = parse_topology({"cluster": "dk", "backend": "docker", "state_dir": str(tmp_path),
                        "analytics": {"enabled": False}, "fdw": {"enabled": False}, "ha": {"port": 16500},
                        "backup": {"repository": {"path": "repo"}}}, env={})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    section = PgBackRest(ctx, DockerBackend(ctx)).render().split("[dk-coordinator]\n", 1)[1].split("\n\n")[0]
    assert section.splitlines() == ["pg1-path=/var/lib/postgresql/data/data", "pg1-port=5432",
                                    "pg1-socket-path=/var/lib/postgresql/data/run", f"pg1-user={t.pg_user}",
                                    f"pg1-database={t.metadata.database}"]
    group = ha_groups(t)[0]
    command = archive_parameters(t, group, MemberPaths(Path("/var/lib/postgresql/data")), None,
                                 config="/var/lib/postgresql/data/pgbackrest/pgbackrest.conf")["archive_command"]
    assert command == ("pgbackrest --config=/var/lib/postgresql/data/pgbackrest/pgbackrest.conf "
                       "--stanza=dk-coordinator --pg1-path=/var/lib/postgresql/data/data archive-push %p")


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CMD = "pgbackrest --config=/x/pgbackrest.conf --stanza=c-coordinator archive-push %p"


def row(**kw: object) -> tuple:
    base = {"mode": "on", "command": CMD, "last_wal": "000000010000000000000010",
            "last_time": NOW - timedelta(seconds=10), "failed_wal": None, "failed_time": None, "archived": 16,
            "failures": 0, "current": "000000010000000000000011", "ready": 0, "oldest": None}
    base.update(kw)
    return tuple(base.values())


def test_archiving_verdicts() -> None:
    assert judge(row(), 60, NOW).status is Status.PASSED
    assert judge(row(command=""), 60, NOW).status is Status.FAILED
    late = judge(row(failed_wal="000000010000000000000011", failed_time=NOW - timedelta(seconds=1)), 60, NOW)
    assert late.status is Status.FAILED and "failed" in late.detail
    # an idle server archives nothing new: an old last segment with nothing waiting is fine
    assert judge(row(last_time=NOW - timedelta(hours=3)), 60, NOW).status is Status.PASSED
    stuck = judge(row(last_time=NOW - timedelta(hours=3), current="000000010000000000000015"), 60, NOW)
    assert stuck.status is Status.FAILED and "4 finished WAL segment(s) not archived" in stuck.detail
    # nothing archived since the statistics began (a restored server): judged by the segments waiting
    assert judge(row(last_wal=None, last_time=None), 60, NOW).status is Status.PASSED
    fresh = judge(row(last_wal=None, last_time=None, ready=1, oldest=NOW - timedelta(seconds=5)), 60, NOW)
    assert fresh.status is Status.PASSED and fresh.data["waiting"] == 1
    never = judge(row(last_wal=None, last_time=None, ready=3, oldest=NOW - timedelta(minutes=5)), 60, NOW)
    assert never.status is Status.FAILED and "3 finished segment(s) waiting" in never.detail


def test_a_timestamp_resolves_to_the_latest_restore_point_at_or_before_it() -> None:
    def s(label: str, minutes: int | None) -> BackupSet:
        at = None if minutes is None else (NOW + timedelta(minutes=minutes)).isoformat()
        return BackupSet(label, "c", "full", label if at else None, at)

    sets = [s("a", 0), s("b", 10), s("broken", 15), s("c", 20)]
    assert set_for_time(sets, NOW + timedelta(minutes=12)).label == "b"
    assert set_for_time(sets, NOW + timedelta(minutes=20)).label == "c"
    with pytest.raises(RefusedError, match="before the WAL range"):
        set_for_time(sets, NOW - timedelta(minutes=1))
    with pytest.raises(NotFoundError):
        set_for_time([s("broken", None)], NOW)


@pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed")
def test_no_repository_and_a_missing_one_are_clear_errors(tmp_path: Path) -> None:
    from streamctl.backends.local.backend import LocalBackend
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.backup.take import list_sets
    from streamctl.context import ClusterContext
    from streamctl.errors import PreflightError

    plain = ClusterContext.build(parse_topology({"state_dir": str(tmp_path)}), tmp_path / "topology.yaml")
    with pytest.raises(PreflightError, match="has no backup repository"):
        PgBackRest(plain, LocalBackend(plain))
    t = parse_topology({"state_dir": str(tmp_path), "backup": {"repository": {"path": "nowhere"}}})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    with pytest.raises(PreflightError, match=r"backup.repository.path: .*nowhere does not exist"):
        list_sets(PgBackRest(ctx, LocalBackend(ctx)))


def test_the_missing_segment_is_the_one_after_the_last_restored() -> None:
    from streamctl.backup.recover import _next_segment

    fatal = "FATAL:  recovery ended before configured recovery target was reached"
    log = 'LOG:  restored log file "000000010000000000000003" from archive\nLOG:  redo done\n' + fatal
    assert _next_segment(log) == "000000010000000000000004"
    assert _next_segment('restored log file "0000000200000003000000FF" from archive\n' + fatal) == \
        "000000020000000400000000"
    assert _next_segment('restored log file "000000010000000000000003" from archive\n') is None


def test_a_restored_node_replays_as_many_prepared_transactions_as_citus_gave_it() -> None:
    """Citus's two-phase commits leave PREPAREs in the WAL: the isolated server (no Citus loaded) needs the
    slots Citus gives a node (2 x max_connections unless set)."""
    from dataclasses import replace

    from streamctl.backup.recover import prepared_slots

    nodes = {n.name: n for n in parse_topology({}).nodes()}
    assert dict(nodes["worker-1"].settings)["max_connections"] == "200"
    assert prepared_slots(nodes["coordinator"]) == "400" and prepared_slots(nodes["worker-1"]) == "400"
    given = replace(nodes["worker-1"], settings=(("max_connections", "50"), ("max_prepared_transactions", "64")))
    assert prepared_slots(given) == "64"
    assert prepared_slots(replace(given, settings=(("max_connections", "50"),))) == "100"


def test_backed_up_swarm_nodes_start_pgbackrest_server_for_the_repository_only() -> None:
    """On Swarm a backed-up node's task starts pgBackRest's TLS server (accepting the repository's certificate
    only) and then the image's entrypoint with the node's own command; the replica and Redis are unchanged."""
    import subprocess

    from streamctl.backends.swarm.spec import service_spec
    from streamctl.config.model import BACKED_UP_ROLES
    from streamctl.tls import certs
    from streamctl.tls.material import NodeTls

    t = parse_topology({"backend": "swarm", "bind": "0.0.0.0", "backup": {"repository": {"path": "r"}}}, env={})
    ca = certs.new_ca("c")
    secrets = {"postgres_password": "a", "redis_password": "b", "mongo_password": "c"}
    for node in t.nodes():
        pair = certs.issue_server(ca, node.name, {node.name})
        command = service_spec(t, node, secrets, NodeTls(ca.cert, pair.cert, pair.key)).command
        if node.role in BACKED_UP_ROLES:
            assert command[:2] == ["sh", "-c"] and command[3:5] == ["sh", "postgres"], command
            assert "'--tls-server-auth=backup=*' server; sleep 2; done &" in command[2]
            assert command[2].count("--tls-server-auth") == 1
            assert command[2].endswith('exec docker-entrypoint.sh "$@"')
            assert subprocess.run(["sh", "-n", "-c", command[2]]).returncode == 0
        else:
            assert "pgbackrest" not in " ".join(command), (node.name, command)


def test_a_restored_topology_keeps_ha_with_ports_of_its_own_the_analytics_group_included() -> None:
    from streamctl.backup.ha import move_ha_ports
    from streamctl.config.members import etcd_members, ha_groups

    raw = {"backend": "local", "ha": {"standbys": 1, "analytics": {"standbys": 1}, "etcd": {"members": 3}}}
    source = parse_topology(raw)
    firsts = iter([40000, 41000, 42000])
    asked: list[int] = []

    def free(n: int) -> int:
        asked.append(n)
        return next(firsts)

    move_ha_ports(raw, source, free)
    # the standbys of the coordinator, 2 workers and the analytics primary, every member's REST, 3 etcd x 2
    assert asked == [4, 8, 6]
    restored = parse_topology(raw)
    groups = ha_groups(restored)
    assert [g.node.name for g in groups] == ["coordinator", "worker-1", "worker-2", "analytics-primary"]
    assert sorted(m.port for g in groups for m in g.members[1:]) == [40000, 40001, 40002, 40003]
    assert sorted(m.rest_port for g in groups for m in g.members) == list(range(41000, 41008))
    assert [(e.port, e.peer_port) for e in etcd_members(restored)] == [(42000, 42003), (42001, 42004),
                                                                       (42002, 42005)]
