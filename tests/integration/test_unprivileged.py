"""The local backend as an ordinary user (no root, no user switching) and as root (PostgreSQL dropped to
an unprivileged user). Whichever we are, the other case runs too when we are root."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.cli import Finished, streamctl
from tests.support.cluster import traversable_tmpdir, write_topology
from tests.support.engines import skip_or_fail

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TEST_USER = "streamctl-test"


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True)
        return pwd.getpwnam(TEST_USER)


def _interpreter_for(user: pwd.struct_passwd) -> tuple[str, str]:
    """This interpreter if the user may run it, else a same-version system one with our packages on the
    path (a venv made from an interpreter under root's home is not executable for other users)."""
    repo = str(REPO)
    site = [p for p in sys.path if p.endswith("site-packages")]
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    for exe in candidates:
        try:
            probe = subprocess.run([exe, "-c", "import typer, psycopg, pydantic"], capture_output=True,
                                   user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                                   env={"PYTHONPATH": os.pathsep.join([repo, *site])}, cwd="/")
        except PermissionError:
            continue
        if probe.returncode == 0:
            return exe, os.pathsep.join([repo, *site])
    reason = (f"no Python {sys.version_info.major}.{sys.version_info.minor} interpreter with streamctl's "
              f"packages is usable by the user {TEST_USER}")
    skip_or_fail("postgres", reason)  # CI (root, the clone maybe under a 0700 home) needs this test to run


@pytest.mark.skipif(os.geteuid() != 0, reason="already an ordinary user: every other test covers this case")
def test_up_and_down_as_an_ordinary_user() -> None:
    user = _ensure_user()
    directory = traversable_tmpdir()
    path = write_topology(directory, cluster="plain", replicas=1, mongo=False)
    os.chown(directory, user.pw_uid, user.pw_gid)
    os.chown(path, user.pw_uid, user.pw_gid)

    python, pythonpath = _interpreter_for(user)

    def run(*args: str) -> Finished:
        env = {"PATH": os.environ["PATH"], "HOME": str(directory), "LANG": "C.UTF-8", "PYTHONPATH": pythonpath}
        return streamctl(*args, "-f", str(path), python=python, env=env, inherit_env=False, cwd=REPO,
                         user=user.pw_uid, group=user.pw_gid, extra_groups=[], timeout=300)

    try:
        up = run("up")
        assert up.returncode == 0, up.stderr
        status = json.loads(run("status", "--json").stdout)["nodes"]
        assert all(s["healthy"] for s in status)
        ps = subprocess.run(["ps", "-o", "user=", "-C", "postgres"], capture_output=True, text=True).stdout
        secrets = directory / ".streamctl" / "plain" / "secrets.json"
        assert secrets.stat().st_uid == user.pw_uid and (secrets.stat().st_mode & 0o777) == 0o600
        assert TEST_USER[:8] in ps or str(user.pw_uid) in ps
        down = run("down", "--volumes", "--yes")
        assert down.returncode == 0, down.stderr
        assert not (directory / ".streamctl" / "plain").exists()
    finally:
        run("down", "--volumes", "--yes")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check that PostgreSQL is not run as root")
def test_as_root_postgres_runs_unprivileged(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    c.up()
    pid = int((c.ctx.store.node_dir("coordinator") / "data" / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0
    data = c.ctx.store.node_dir("coordinator") / "data"
    assert data.stat().st_uid == os.stat(f"/proc/{pid}").st_uid and (data.stat().st_mode & 0o777) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_unreachable_state_dir_keeps_state_but_not_node_data(tmp_path: Path) -> None:
    """pytest's own tmp dir is 0700 root: the PostgreSQL user cannot reach it, so node data goes to
    /var/lib/streamctl (tests/integration/test_root_private_home.py runs the README's command)."""
    from streamctl.backends.local.data_home import relocated_path

    os.chmod(tmp_path.parent, 0o700)
    path = write_topology(tmp_path, replicas=0, fdw=False)

    def run(*args: str) -> Finished:
        return streamctl(*args, "-f", str(path), timeout=300)

    moved = relocated_path(tmp_path / ".streamctl" / "t")
    try:
        proc = run("up")
        assert proc.returncode == 0, proc.stderr
        assert (moved / "nodes" / "coordinator").is_dir()
        assert not (tmp_path / ".streamctl" / "t" / "nodes").exists()
        assert (tmp_path / ".streamctl" / "t" / "state.json").exists()
    finally:
        run("down", "--volumes", "--yes")
    assert not moved.exists()
