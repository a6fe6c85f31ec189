"""What the benchmarks share with the tests (tests/support/: free loopback ports, so a benchmark never touches a
running cluster, and the one way to run the `streamctl` command) and among themselves (a throw-away local
cluster). Benchmarks run as scripts (`python bench/x.py`: bench/ first on the path), so the checkout goes on
the path here, after bench/."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

from tests.support.cli import command, streamctl  # noqa: E402
from tests.support.ports import free_port, free_port_run  # noqa: E402

__all__ = ["REPO", "command", "free_port", "free_port_run", "local_cluster", "streamctl"]


@contextlib.contextmanager
def local_cluster(prefix: str, write_topology: Callable[[Path], Path],
                  timeout: float = 120) -> Iterator[tuple[Path, ClusterContext, Runner]]:
    """A local cluster (not started) whose topology `write_topology(work)` writes into a fresh work directory
    the unprivileged PostgreSQL user can reach: (topology path, context, runner). Taken down with its volumes
    and the directory removed at the end."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    path = write_topology(work)
    ctx = ClusterContext.build(load_topology(path), path)
    runner = Runner(ctx, LocalBackend(ctx), timeout=timeout)
    try:
        yield path, ctx, runner
    finally:
        runner.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)
