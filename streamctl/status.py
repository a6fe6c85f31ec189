"""Observations of the nodes for `status` and `logs`, as plain data the CLI renders."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl.backends.base import Backend, NodeState
from streamctl.backends.mixed import backend_for
from streamctl.config.members import Group, ha_groups
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.ha import dcs, rest

ORPHAN = "no longer in the topology: `streamctl up --remove-orphans` removes it"


def node_status(ctx: ClusterContext, backend: Backend, node: Node, orphan: bool = False) -> dict[str, Any]:
    row = {"name": node.name, "role": node.role.value, "engine": node.engine.value, "orphan": orphan}
    runs = backend_for(backend, node)
    if runs is None:  # an orphan recorded by a backend this command does not use
        return {**row, "backend": node.backend, "host": node.host, "port": node.port, "state": "unknown",
                "healthy": False, "detail": f"{ORPHAN}; run by the {node.backend} backend"}
    backend = runs
    obs = backend.observe(node)
    ep = backend.endpoint(node)
    healthy = False
    detail = obs.detail
    if obs.state is NodeState.RUNNING:
        try:
            healthy = bool(backend.readiness(node, timeout=3).probe())
        except Exception as exc:  # noqa: BLE001 - an unhealthy node is data here, not an error
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if orphan:
        detail = f"{ORPHAN}; {detail}" if detail else ORPHAN
    seen: dict[str, Any] = {**row, "backend": backend.name, "host": ep.host, "port": ep.port,
                             "state": obs.state.value, "healthy": healthy, "detail": detail}
    group = next((g for g in ha_groups(ctx.topology, ctx.store.pinned()) if g.node.name == node.name), None)
    if group is None:
        return seen
    problem = dcs.dcs_state(ctx.topology, ctx.store.pinned()).problem if obs.state is not NodeState.MISSING else None
    if problem is None:
        return {**seen, "members": member_rows(ctx, group)}
    return {**seen, **dcs_rows(ctx, group, problem)}


def group_label(group: Group) -> int | str:
    """A member row's `group`: the Citus group's number, or the node's name (the analytics primary's)."""
    return group.number if group.number is not None else group.node.name


def dcs_rows(ctx: ClusterContext, group: Group, problem: str) -> dict[str, Any]:
    """Under HA with etcd unreachable or without quorum: what happened, and each member as it sees itself."""
    views = dcs.members_without_dcs(group, ctx.ca_path() if ctx.tls_on else None)
    found = {v.name: v for v in views}
    primary = next((v for v in views if v.primary and v.state == "running"), None)
    rows = [{"name": m.name, "group": group_label(group), "host": m.node.host, "port": m.port,
             "ha_role": None if v is None else "leader" if v.primary else "replica",
             "state": v.state if v else "down", "timeline": v.timeline if v else None, "lag_bytes": None}
            for m in group.members for v in [found.get(m.name)]]
    return {"healthy": False, "detail": dcs.explain(group, problem, views), "members": rows,
            "dcs": {"problem": problem, "failsafe": bool(primary and primary.failsafe_active),
                    "primary": primary.name if primary else None}}


def member_rows(ctx: ClusterContext, group: Group) -> list[dict[str, Any]]:
    """Under HA: each member of the group as Patroni's REST API sees it (a member it does not list is down)."""
    found = {s.name: s for s in rest.group_members(group.members, ctx.ca_path() if ctx.tls_on else None)}
    rows = []
    for m in group.members:
        s = found.get(m.name)
        rows.append({"name": m.name, "group": group_label(group), "host": m.node.host, "port": m.port,
                     "ha_role": s.ha_role if s else None, "state": s.state if s else "down",
                     "timeline": s.timeline if s else None, "lag_bytes": s.lag_bytes if s else None})
    return rows


def cluster_status(ctx: ClusterContext, backend: Backend) -> list[dict[str, Any]]:
    """Every node of the topology, then every orphan (a node the state knows and the topology no longer
    has: it may still run, and hold a slot or shards)."""
    nodes = [(n, False) for n in ctx.topology.nodes()] + [(n, True) for n in ctx.orphans()]
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        rows = list(pool.map(lambda pair: node_status(ctx, backend, *pair), nodes))
    # Volumes of nodes no longer in the topology that could not be removed yet (Swarm, after `scale`):
    # listed, not judged (the next `up`, `scale` or `down --volumes` removes them).
    leftovers = getattr(backend, "leftover_volumes", None)
    names = {n.name for n, _ in nodes}
    for node, text in (leftovers() if leftovers is not None else []):
        if node not in names:
            rows.append({"name": node, "role": "removed", "engine": "", "backend": backend.name, "host": "",
                         "port": 0, "state": "volume left", "healthy": True, "orphan": False,
                         "detail": f"{text} still to be removed"})
    return rows


def node_logs(backend: Backend, node: Node, tail: int, follow: bool, poll: float = 1.0) -> Iterator[str]:
    """A node's last `tail` log lines; with follow, then each new line as it appears (until interrupted)."""
    seen = backend.logs(node, tail)
    yield from seen
    while follow:
        time.sleep(poll)
        latest = backend.logs(node, 200)
        overlap = next((i for i in range(len(latest)) if latest[i:] == seen[-len(latest) + i:]), len(latest))
        yield from latest[overlap:]
        seen = latest
