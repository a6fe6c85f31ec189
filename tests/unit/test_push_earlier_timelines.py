"""Patroni's on_role_change callback under HA with backups (engines/pgbackrest.push_earlier_timelines), run by a
real `sh` against a data directory's pg_wal, with a `pgbackrest` on PATH that records what it is asked to push."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from streamctl.engines.pgbackrest import push_earlier_timelines

SEGMENTS = ["000000010000000000000003", "000000010000000000000004", "00000001000000000000000A",
            "000000010000000000000005.partial", "000000020000000000000005", "00000002.history"]


def _start(tmp_path: Path, *args: str, standby: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
    data = tmp_path / "data with space"
    (data / "pg_wal" / "archive_status").mkdir(parents=True)
    for name in SEGMENTS:
        (data / "pg_wal" / name).touch()
    if standby:
        (data / "standby.signal").touch()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "pushed"
    fake = bindir / "pgbackrest"
    fake.write_text(f'#!/bin/sh\necho "$PWD $*" >> "{log}"\n')
    fake.chmod(0o755)
    command = push_earlier_timelines("/etc/pgbackrest.conf", "c-worker-1", data, f"--pg1-path={data}")
    proc = subprocess.Popen(f"{command} {' '.join(args)}", shell=True,  # noqa: S602 - as Patroni runs it
                            env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    return proc, log


def _pushed(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _run(tmp_path: Path, *args: str) -> list[str]:
    proc, log = _start(tmp_path, *args)
    assert proc.wait(timeout=30) == 0
    return _pushed(log)


def test_a_promoted_member_pushes_the_finished_segments_of_earlier_timelines(tmp_path: Path) -> None:
    pushed = _run(tmp_path, "on_role_change", "primary", "c")
    data = tmp_path / "data with space"
    prefix = f"{data} --config=/etc/pgbackrest.conf --stanza=c-worker-1 --pg1-path={data} --no-archive-async " \
             "archive-push pg_wal/"
    # timeline 1's finished segments only: not the partial one, not the current timeline's
    assert pushed == [prefix + s for s in ("000000010000000000000003", "000000010000000000000004",
                                           "00000001000000000000000A")], pushed


def test_other_roles_and_actions_push_nothing(tmp_path: Path) -> None:
    assert _run(tmp_path, "on_role_change", "replica", "c") == []
    assert _run(tmp_path / "b", "on_start", "primary", "c") == []


def test_it_waits_until_the_promotion_removed_standby_signal(tmp_path: Path) -> None:
    """Patroni calls it as it asks PostgreSQL to promote: nothing is pushed while the server is a standby."""
    proc, log = _start(tmp_path, "on_role_change", "primary", "c", standby=True)
    time.sleep(1.0)
    assert proc.poll() is None and _pushed(log) == []
    (tmp_path / "data with space" / "standby.signal").unlink()
    assert proc.wait(timeout=30) == 0
    assert len(_pushed(log)) == 3
