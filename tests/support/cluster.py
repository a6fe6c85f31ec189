"""Topologies on free ports and real local clusters made from them, in directories the unprivileged
PostgreSQL user can reach."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import yaml

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner
from tests.support.cli import Cli
from tests.support.engines import citus_bindir
from tests.support.ports import free_port, free_port_run


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
    """topology.yaml in `directory`: `topology_dict(**kwargs)`."""
    return save_topology(directory, topology_dict(**kwargs))


def save_topology(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def traversable_tmpdir() -> Path:
    """A fresh directory the unprivileged PostgreSQL user can reach (pytest's own tmp is 0700 for root)."""
    directory = Path(tempfile.mkdtemp(prefix="streamctl-test-"))
    os.chmod(directory, 0o755)
    return directory


class LocalCluster:
    """A real cluster of local processes, its topology file in a temporary directory, for integration tests."""

    backend_class: Any = LocalBackend
    timeout = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reload()

    @classmethod
    def new(cls, data: dict[str, Any]) -> Self:
        """Not started: `data` written to a fresh traversable directory."""
        return cls(save_topology(traversable_tmpdir(), data))

    @property
    def cli(self) -> Cli:
        """The `streamctl` command on this cluster's topology file."""
        return Cli(self.path)

    def reload(self) -> None:
        self.topology = load_topology(self.path)
        self.ctx = ClusterContext.build(self.topology, self.path)
        self.backend = self.backend_class(self.ctx)
        self.runner = Runner(self.ctx, self.backend, timeout=self.timeout)

    def edit(self, change: Any) -> None:
        """Apply `change(dict)` to the topology file and reload."""
        data = yaml.safe_load(self.path.read_text())
        change(data)
        self.path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.reload()

    def up(self) -> Any:
        self.reload()
        return self.runner.up()

    def down(self, volumes: bool = False) -> None:
        self.runner.down(volumes=volumes)

    def destroy(self) -> None:
        """Down with the volumes (as the topology now says), then the directory goes."""
        try:
            self.reload()
            self.down(volumes=True)
        finally:
            shutil.rmtree(self.path.parent, ignore_errors=True)


C = TypeVar("C", bound=LocalCluster)


@contextlib.contextmanager
def running(kind: type[C] | None = None, data: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[C]:
    """A cluster of `data` (by default `topology_dict(**kwargs)`), up, of class `kind` (by default a local
    one; a DockerCluster); destroyed afterwards (a module-scoped fixture's body)."""
    c = cast(C, (kind or LocalCluster).new(data if data is not None else topology_dict(**kwargs)))
    try:
        c.up()
        yield c
    finally:
        c.destroy()
