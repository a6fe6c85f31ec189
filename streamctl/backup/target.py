"""The new cluster a restore goes into: its name and its topology file, the source's settings with
another cluster name and free ports, so the copy runs beside the original."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from streamctl.backup.ha import ha_ports, move_ha_ports
from streamctl.backup.pgbackrest import BackupError
from streamctl.errors import RefusedError

if TYPE_CHECKING:
    from streamctl.context import ClusterContext


def _free_run(n: int, taken: set[int]) -> int:
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        ports = range(base, base + max(n, 1))
        if base + n > 65535 or taken & set(ports):
            continue
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        taken.update(ports)
        return base
    raise BackupError("no free ports on 127.0.0.1 for the restored cluster")


def new_topology_text(source: Path, ctx: ClusterContext, name: str) -> str:
    """The source file's settings (its ${VAR}s kept, not expanded) with another cluster name and free
    ports for every node (and its `ha:` members and etcd), so the copy runs beside the original."""
    raw = yaml.safe_load(source.read_text()) or {}
    t = ctx.topology
    taken: set[int] = {n.port for n in t.nodes()} | {t.gateway.port} | ha_ports(t)
    raw["cluster"] = name

    def section(*path: str) -> dict[str, Any]:
        node = raw
        for key in path:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        return node

    section("metadata", "coordinator")["port"] = _free_run(1, taken)
    if t.citus:
        section("metadata", "workers")["port"] = _free_run(t.metadata.workers.count + 2, taken)
    if t.analytics.enabled and t.analytics.primary is not None:
        section("analytics", "primary")["port"] = _free_run(1, taken)
        raw["analytics"]["replicas"] = [{**r.model_dump(exclude_none=True), "port": _free_run(1, taken)}
                                        for r in t.analytics.replicas]
    for key in ("mongo", "redis", "gateway"):
        section(key)["port"] = _free_run(1, taken)
    if t.ha_on:
        move_ha_ports(raw, t, lambda n: _free_run(n, taken))
    return "# restored by streamctl from cluster " + t.cluster + "\n" + yaml.safe_dump(raw, sort_keys=False)


def default_name(ctx: ClusterContext) -> str:
    base = f"{ctx.topology.cluster}-restored"[:38]
    parent = ctx.topology_path.parent if ctx.topology_path else Path.cwd()
    for i in range(1, 100):
        name = base if i == 1 else f"{base}-{i}"
        if not (parent / f"{name}.yaml").exists():
            return name
    raise RefusedError("name the restored cluster with --into")
