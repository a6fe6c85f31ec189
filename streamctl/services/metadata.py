"""The metadata database on the coordinator: the Citus layer (or its null twin), and the catalogue schema
applied in two phases around distribution (foreign keys only once the tables are distributed)."""

from __future__ import annotations

from streamctl.backends.base import Backend
from streamctl.citus.layer import citus_layer
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.services.postgres import schema_step
from streamctl.steps import ConfigStep


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    layer = citus_layer(ctx)
    out = layer.node_steps()
    coordinator = ctx.first(Role.COORDINATOR)
    if coordinator is not None:
        out.append(schema_step(ctx, coordinator, "metadata", after_distribution=False))
        out += layer.distribution_steps()
        out.append(schema_step(ctx, coordinator, "metadata", after_distribution=True))
    return out
