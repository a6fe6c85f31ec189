"""Service adapters: what `up` configures inside the nodes once they run, as ordered ConfigSteps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.config.model import Engine, Role
from streamctl.steps import ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext


def configuration_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Every configuration step of the platform, in the order they must run."""
    from streamctl.citus.layer import citus_layer
    from streamctl.services import postgres
    from streamctl.services.fdw import FdwService
    from streamctl.services.gateway_role import GatewayRoleService
    from streamctl.services.mongo import MongoService
    from streamctl.services.redis import redis_step
    from streamctl.services.replication import ReplicationService

    t = ctx.topology
    nodes = t.nodes()
    coordinator = ctx.first(Role.COORDINATOR)
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    replicas = t.nodes_by_role(Role.ANALYTICS_REPLICA)
    steps = [postgres.database_step(ctx, n) for n in nodes if n.engine is Engine.POSTGRES]

    citus = citus_layer(ctx)
    steps += citus.node_steps()
    if coordinator is not None:
        steps.append(postgres.schema_step(ctx, coordinator, "metadata", after_distribution=False))
        steps += citus.distribution_steps()
        steps.append(postgres.schema_step(ctx, coordinator, "metadata", after_distribution=True))

    fdw = FdwService(ctx) if t.fdw.enabled and coordinator is not None and primary is not None else None
    if primary is not None:
        repl = ReplicationService(ctx, backend)
        steps.append(postgres.schema_step(ctx, primary, "analytics", after_distribution=False))
        steps += [repl.role_step(), repl.publication_step()]
        for node in (primary, *replicas):
            rules = []
            if node is primary:
                rules.append(postgres.HbaRule(t.analytics.database, repl.user,
                                              tuple(backend.source_address(r) for r in replicas)))
            if fdw is not None and fdw.source.name == node.name:
                rules.append(postgres.HbaRule(t.analytics.database, fdw.user,
                                              (backend.source_address(fdw.coordinator),)))
            steps.append(postgres.hba_step(ctx, backend, node, rules))
        for replica in replicas:
            steps.append(postgres.schema_step(ctx, replica, "analytics", after_distribution=False))
            steps.append(repl.subscription_step(replica))
    if fdw is not None:
        steps += [fdw.reader_role_step(), fdw.coordinator_step()]
    if t.gateway.enabled:
        steps += GatewayRoleService(ctx).steps()

    mongo = t.node(t.mongo.name) if t.mongo.enabled else None
    if mongo is not None:
        svc = MongoService(ctx, mongo)
        steps += [svc.users_step(), svc.reviews_step()]
    redis = t.node(t.redis.name) if t.redis.enabled else None
    if redis is not None:
        steps.append(redis_step(ctx, redis))
    return steps
