"""Observations for `status`, as plain data the CLI renders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl.backends.base import Backend, NodeState
from streamctl.config.model import Node
from streamctl.context import ClusterContext


def node_status(ctx: ClusterContext, backend: Backend, node: Node) -> dict[str, Any]:
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
        return list(pool.map(lambda n: node_status(ctx, backend, n), nodes))
