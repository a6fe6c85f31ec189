"""The monitoring node `up` starts when monitoring.prometheus is on: Prometheus scraping the gateway (a local
process on the local backend, a container on Docker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.errors import PreflightError
from streamctl.services.base import ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext
    from streamctl.monitoring.prometheus import PrometheusServer

ON = ("local", "docker")


def server(ctx: ClusterContext, backend: Backend) -> PrometheusServer:
    """The cluster's Prometheus: Debian's binary as a local process, or a container of monitoring.image."""
    if backend.name == "docker":
        from streamctl.monitoring.container import PrometheusContainer

        return PrometheusContainer(ctx, backend.client)  # type: ignore[attr-defined]
    from streamctl.monitoring.prometheus import PrometheusServer

    return PrometheusServer(ctx)


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    if not ctx.topology.monitoring.prometheus:
        return []
    if backend.name not in ON:  # `backend: auto` or mixed placements (an explicit swarm is a topology error)
        raise PreflightError(f"monitoring.prometheus: the monitoring node runs on the local and Docker backends "
                             f"(this cluster runs on {backend.name})", hint="set monitoring.prometheus: false, "
                             "or backend: local / docker")
    from streamctl.monitoring.prometheus import NODE

    node = server(ctx, backend)
    node.binary()  # missing: refused at plan time, before any node changes
    return [ConfigStep(NODE, "prometheus", node.pending, node.ensure, after=())]


def stop(ctx: ClusterContext, backend: Backend, volumes: bool = False) -> None:
    """`down`: the monitoring node stops with the others (its data stays unless --volumes)."""
    if backend.name not in ON:
        return
    node = server(ctx, backend)
    if backend.name == "docker":
        node.stop(volumes=volumes)  # type: ignore[call-arg]
    else:
        node.stop()
