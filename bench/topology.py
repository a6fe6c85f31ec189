"""The topology a benchmark of `up` runs: the given file on fresh loopback ports, a unique cluster name,
optionally one image for every PostgreSQL and Redis node; and its cluster context."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from common import free_port, free_port_run  # bench/common.py (benchmarks run as scripts)

from streamctl.config.load import parse_topology
from streamctl.context import ClusterContext


def bench_topology(path: Path, backend: str, image: str | None) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["cluster"] = f"bench-up-{time.time_ns() % 10**10}"
    data["backend"] = backend
    md, an = data["metadata"], data["analytics"]
    md["coordinator"]["port"] = free_port()
    md["workers"]["port"] = free_port_run(int(md["workers"].get("count", 0)) + 1)  # worker i: port + i - 1
    an["primary"]["port"] = free_port()
    for replica in an.get("replicas", []):
        replica["port"] = free_port()
    for role in ("mongo", "redis", "gateway"):
        data.setdefault(role, {})["port"] = free_port()
    if image:
        md["coordinator"]["image"] = image
        an["primary"]["image"] = image
        data["redis"]["image"] = image
    return data


def context(data: dict[str, Any], state_dir: Path) -> ClusterContext:
    return ClusterContext.build(parse_topology(data), state_dir / "topology.yaml", state_dir / "state")
