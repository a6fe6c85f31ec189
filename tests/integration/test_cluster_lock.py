"""One mutating command at a time per cluster: two `up` at once both succeed (the second waits and says
so); --wait-lock 0 fails at once; a holder killed with SIGKILL does not block the next; Ctrl-C reports."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamctl.errors import ExitCode
from streamctl.lock import ClusterLock
from tests.support.cli import start, streamctl
from tests.support.cluster import save_topology, topology_dict, traversable_tmpdir
from tests.support.docker import remove_cluster_resources, unique_cluster, use_image
from tests.support.images import ensure_test_image

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def topology_file() -> Iterator[Callable[..., Path]]:
    made: list[Path] = []

    def factory(image: str | None = None, **kwargs: Any) -> Path:
        data = topology_dict(**kwargs)
        made.append(save_topology(traversable_tmpdir(), use_image(data, image) if image else data))
        return made[-1]

    yield factory
    for path in made:
        streamctl("down", "--volumes", "--yes", "-f", str(path))


def lock_of(path: Path, cluster: str) -> ClusterLock:
    return ClusterLock(path.parent / ".streamctl" / cluster, "test", cluster)


def two_ups_at_once(path: Path) -> None:
    first = start("up", "-f", str(path))
    second = start("up", "-f", str(path))
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    waited = [e for e in (err1, err2) if "waiting for the lock" in e and "waited" in e]
    assert len(waited) == 1, (err1, err2)  # exactly one of them waited, and said so
    status = streamctl("status", "--json", "-f", str(path))
    assert status.returncode == 0, status.stdout + status.stderr  # every node up and healthy


def test_two_ups_at_once_on_a_fresh_local_cluster(topology_file) -> None:
    two_ups_at_once(topology_file(cluster="lock-local"))


def test_wait_lock_zero_fails_at_once_with_a_clear_error(topology_file) -> None:
    path = topology_file(cluster="lock-busy", analytics=False, fdw=False)
    with lock_of(path, "lock-busy").acquire(wait=0):
        t0 = time.monotonic()
        res = streamctl("up", "--wait-lock", "0", "-f", str(path))
        assert res.returncode == ExitCode.BUSY, res.stderr
        assert "cluster lock-busy is busy" in res.stderr and "`test`" in res.stderr
        assert "--wait-lock" in res.stderr
        bounded = streamctl("down", "--wait-lock", "0.5", "-f", str(path))
        assert bounded.returncode == ExitCode.BUSY and "after waiting 0.5s" in bounded.stderr
        assert time.monotonic() - t0 < 60
    assert not (path.parent / ".streamctl" / "lock-busy" / "state.json").exists()  # nothing was done


def test_a_holder_killed_with_sigkill_does_not_block_the_next(topology_file) -> None:
    path = topology_file(cluster="lock-kill", analytics=False, fdw=False)
    lock_file = path.parent / ".streamctl" / "lock-kill" / ".lock"
    proc = start("up", "-f", str(path))
    deadline = time.monotonic() + 60
    while f"pid {proc.pid}" not in (lock_file.read_text() if lock_file.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, "up never took the lock"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    res = streamctl("up", "--wait-lock", "0", "-f", str(path))  # the dead holder's flock is gone
    assert res.returncode == 0, res.stderr
    assert streamctl("status", "-f", str(path)).returncode == 0


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "started-with-sigint-ignored"])
def test_ctrl_c_during_up_says_what_was_done_and_that_up_finishes_it(topology_file, sigint_ignored) -> None:
    """Also when started as a non-interactive shell starts a background job (and CI its steps): with SIGINT
    ignored, which Python keeps; `up` then used to run to the end and exit 0."""
    path = topology_file(cluster=f"lock-int-{int(sigint_ignored)}")
    proc = start("up", "-f", str(path), sigint_ignored=sigint_ignored)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # not a terminal: one line per finished step
        seen.append(line)
        if line.startswith("✓"):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "interrupted" in err and "done: " in err and "run `streamctl up` again" in err
    res = streamctl("up", "-f", str(path))
    assert res.returncode == 0, res.stderr
    assert streamctl("status", "-f", str(path)).returncode == 0


@pytest.mark.docker
def test_two_ups_at_once_on_a_fresh_docker_cluster(topology_file) -> None:
    name = unique_cluster()
    path = topology_file(cluster=name, backend="docker", image=ensure_test_image())
    try:
        two_ups_at_once(path)
    finally:
        remove_cluster_resources(name)
