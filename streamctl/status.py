"""Observations of the nodes for `status` and `logs`, as plain data the CLI renders."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl.backends.base import Backend, NodeState
from streamctl.backends.mixed import backend_of
from streamctl.config.model import Node
from streamctl.context import ClusterContext


def node_status(ctx: ClusterContext, backend: Backend, node: Node) -> dict[str, Any]:
    backend = backend_of(backend, node)
    obs = backend.observe(node)
    ep = backend.endpoint(node)
    healthy = False
    detail = obs.detail
    if obs.state is NodeState.RUNNING:
        try:
            healthy = bool(backend.readiness(node, timeout=3).probe())
        except Exception as exc:  # noqa: BLE001 - an unhealthy node is data here, not an error
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"name": node.name, "role": node.role.value, "engine": node.engine.value, "backend": backend.name,
            "host": ep.host, "port": ep.port, "state": obs.state.value, "healthy": healthy, "detail": detail}


def cluster_status(ctx: ClusterContext, backend: Backend) -> list[dict[str, Any]]:
    nodes = ctx.topology.nodes()
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        rows = list(pool.map(lambda n: node_status(ctx, backend, n), nodes))
    # Volumes of nodes no longer in the topology that could not be removed yet (Swarm, after `scale`):
    # listed, not judged (the next `up`, `scale` or `down --volumes` removes them).
    leftovers = getattr(backend, "leftover_volumes", None)
    names = {n.name for n in nodes}
    for node, text in (leftovers() if leftovers is not None else []):
        if node not in names:
            rows.append({"name": node, "role": "removed", "engine": "", "backend": backend.name, "host": "",
                         "port": 0, "state": "volume left", "healthy": True, "detail": f"{text} still to be removed"})
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
