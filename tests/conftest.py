"""Shared fixtures: topologies on free ports, real local clusters, and engine-presence markers.

Markers skip a test with a reason when its engine is absent. STREAMCTL_REQUIRE (comma-separated
engines, set by CI) turns such a skip into a failure, so CI can never silently skip what it can run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backends import docker_available
from streamctl.backends.local.backend import LocalBackend
from streamctl.backends.local.recipes import find_pg_bindir, pg_sharedir
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError
from streamctl.runner import Runner


def _postgres() -> str | None:
    try:
        find_pg_bindir(None)
        return None
    except PreflightError:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH"


def citus_bindir() -> str | None:
    """A PostgreSQL bin directory with Citus: STREAMCTL_TEST_PG_BINDIR, else the one on PATH."""
    return os.environ.get("STREAMCTL_TEST_PG_BINDIR") or None


def _citus() -> str | None:
    try:
        bindir = find_pg_bindir(citus_bindir())
    except PreflightError:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH"
    sharedir = pg_sharedir(bindir)
    if not (sharedir / "extension" / "citus.control").exists():
        return (f"the Citus extension is not installed in the PostgreSQL at {bindir} (no citus.control in "
                f"{sharedir}/extension); set STREAMCTL_TEST_PG_BINDIR to a Citus-enabled bin directory")
    return None


def _mongo() -> str | None:
    """A server the Mongo tests can use: STREAMCTL_TEST_MONGO_URI when it answers, else mongod on PATH."""
    if os.environ.get("STREAMCTL_TEST_MONGO_URI"):
        from tests.mongo_server import uri_unreachable

        return uri_unreachable(os.environ["STREAMCTL_TEST_MONGO_URI"])
    if shutil.which("mongod"):
        return None
    return "no mongod on PATH and STREAMCTL_TEST_MONGO_URI is not set"


def _redis() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not on PATH"


def _docker() -> str | None:
    return None if docker_available() else "no Docker engine answers (start dockerd)"


def _chromium() -> str | None:
    return None if (shutil.which("chromium") or shutil.which("chromium-browser")) else "chromium is not installed"


def _prometheus() -> str | None:
    return None if shutil.which("prometheus") else "prometheus is not installed (apt-get install prometheus)"


ENGINE_CHECKS = {"postgres": _postgres, "redis": _redis, "docker": _docker, "citus": _citus,
                 "mongo": _mongo, "chromium": _chromium, "prometheus": _prometheus}
_cache: dict[str, str | None] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    required = {e.strip() for e in os.environ.get("STREAMCTL_REQUIRE", "").split(",") if e.strip()}
    for engine, check in ENGINE_CHECKS.items():
        if item.get_closest_marker(engine) is None:
            continue
        if engine not in _cache:
            _cache[engine] = check()
        reason = _cache[engine]
        if reason is None:
            continue
        if engine in required:
            pytest.fail(f"STREAMCTL_REQUIRE lists {engine}, but {reason}")
        pytest.skip(reason)


_GIVEN_PORTS: set[int] = set()  # the kernel may hand a just-closed port out again


def free_port() -> int:
    """A loopback port free now and not returned before in this session (one topology needs distinct ones)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def free_port_run(n: int) -> int:
    """A port p with p .. p+n-1 all free on 127.0.0.1 (worker i listens on port + i - 1, so a single free
    port is not enough: worker-2's would collide with whatever took port + 1)."""
    for _ in range(50):
        base = free_port()
        if base + n > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {n} free ports on 127.0.0.1")


def topology_dict(*, cluster: str = "t", citus: bool = False, workers: int = 0, mongo: bool = False,
                  redis: bool = True, analytics: bool = True, replicas: int = 1, fdw: bool | dict[str, Any] = True,
                  backend: str = "local", **extra: Any) -> dict[str, Any]:
    """A small topology on free ports; `extra` merges top-level sections over it."""
    data: dict[str, Any] = {
        "version": 1,
        "cluster": cluster,
        "backend": backend,
        "state_dir": ".streamctl",
        "metadata": {
            "citus": {"enabled": citus, "shard_count": 8},
            "coordinator": {"port": free_port()},
            "workers": {"count": workers, "port": free_port_run(workers + 2)},  # + 2: room to scale
        },
        "analytics": {
            "enabled": analytics,
            "primary": {"port": free_port()},
            "replicas": [{"name": f"analytics-replica-{i + 1}", "port": free_port()} for i in range(replicas)],
        },
        "fdw": dict(fdw) if isinstance(fdw, dict) else {"enabled": fdw and analytics},
        "mongo": {"enabled": mongo, "port": free_port()},
        "redis": {"enabled": redis, "port": free_port()},
        "gateway": {"port": free_port()},
    }
    if citus and citus_bindir():
        data["local"] = {"pg_bindir": citus_bindir()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def write_topology(directory: Path, **kwargs: Any) -> Path:
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(topology_dict(**kwargs), sort_keys=False))
    return path


class LocalCluster:
    """A real cluster of local processes in a temporary directory, for integration tests."""

    backend_class: Any = LocalBackend
    timeout = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reload()

    def reload(self) -> None:
        self.topology = load_topology(self.path)
        self.ctx = ClusterContext.build(self.topology, self.path)
        self.backend = self.backend_class(self.ctx)
        self.runner = Runner(self.ctx, self.backend, timeout=self.timeout)

    def up(self) -> Any:
        self.reload()
        return self.runner.up()

    def down(self, volumes: bool = False) -> None:
        self.runner.down(volumes=volumes)


def traversable_tmpdir() -> Path:
    """A fresh directory the unprivileged PostgreSQL user can reach (pytest's own tmp is 0700 for root)."""
    directory = Path(tempfile.mkdtemp(prefix="streamctl-test-"))
    os.chmod(directory, 0o755)
    return directory


@pytest.fixture
def make_cluster() -> Iterator[Any]:
    """Factory: make_cluster(**topology kwargs) -> LocalCluster (not started). Destroyed afterwards."""
    made: list[LocalCluster] = []

    def factory(**kwargs: Any) -> LocalCluster:
        directory = traversable_tmpdir()
        cluster = LocalCluster(write_topology(directory, **kwargs))
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        try:
            cluster.reload()
            cluster.down(volumes=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
        shutil.rmtree(cluster.path.parent, ignore_errors=True)
