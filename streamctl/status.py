"""Observations for `status` and `up --dry-run`, as plain data the CLI renders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl.backends.base import Backend, NodeState
from streamctl.backends.mixed import backend_of
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.runner import Runner


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
        return list(pool.map(lambda n: node_status(ctx, backend, n), nodes))


def dry_run(runner: Runner) -> list[dict[str, Any]]:
    """What `up` would do, without changing anything: node actions, then pending configuration."""
    runner.backend.preflight(runner.nodes)
    steps = runner.plan()
    out: list[dict[str, Any]] = [{"node": s.node.name, "action": "check" if s.node.is_external else
                                  s.action.value, "detail": s.reason} for s in steps]
    all_running = all(s.observation.state is NodeState.RUNNING for s in steps)
    if not all_running:
        out.append({"node": "*", "action": "configure", "detail": "schema, replication, FDW and stores are "
                    "configured once the nodes run"})
        return out
    if any(s.node.is_external for s in steps):
        from streamctl.drift import external_differences

        out += [{"node": d.split(":", 1)[0], "action": "differs", "detail": d.split(":", 1)[1].strip()}
                for d in external_differences(runner.ctx)]
    for cs in runner.config_steps():
        try:
            pending = cs.pending()
        except Exception as exc:  # noqa: BLE001 - a dry run reports what it cannot check
            pending = [f"cannot check: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"]
        action = "configure" if pending else "noop"
        if pending and runner.is_external(cs.node) and not runner.configure_external:
            action = "differs"  # reported by `up`, applied only by `up --configure`
        out.append({"node": cs.node, "action": action,
                    "detail": "; ".join(pending) if pending else f"{cs.name}: up to date"})
    return out
