"""The monitoring node `up` starts when monitoring.prometheus is on: Prometheus scraping the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.errors import PreflightError
from streamctl.services.base import ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    if not ctx.topology.monitoring.prometheus:
        return []
    if backend.name != "local":  # `backend: auto` that found Docker (an explicit docker/swarm is a topology error)
        raise PreflightError(f"monitoring.prometheus: the monitoring node runs on the local backend only for now "
                             f"(this cluster runs on {backend.name})", hint="set monitoring.prometheus: false, "
                             "or backend: local")
    from streamctl.monitoring.prometheus import NODE, PrometheusServer

    server = PrometheusServer(ctx)
    server.binary()  # missing: refused at plan time, before any node changes
    return [ConfigStep(NODE, "prometheus", server.pending, server.ensure, after=())]


def stop(ctx: ClusterContext) -> None:
    """`down`: the monitoring node stops with the others (its data stays unless --volumes)."""
    from streamctl.monitoring.prometheus import PrometheusServer

    PrometheusServer(ctx).stop()
