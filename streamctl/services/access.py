"""Who may connect to each PostgreSQL node from where (pg_hba): the replicas' replication role on the
primary, the FDW's reader from the coordinator on its source node; password logins otherwise (only over
TLS when it is on, so the metadata nodes get a managed pg_hba too)."""

from __future__ import annotations

from streamctl.backends.base import Backend
from streamctl.citus.layer import DISTRIBUTION_STEP, WORKERS_STEP
from streamctl.config.members import ha_groups
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.services.fdw import FdwService, fdw_enabled
from streamctl.services.postgres import HbaRule, hba_step
from streamctl.services.replication import ReplicationService
from streamctl.steps import ConfigStep


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    t = ctx.topology
    coordinator = ctx.first(Role.COORDINATOR)
    # A worker's rules change only once the coordinator has registered it and placed the shards.
    citus_done = ((coordinator.name, WORKERS_STEP), (coordinator.name, DISTRIBUTION_STEP)) if coordinator else ()
    led_by_patroni = {g.node.name for g in ha_groups(t)}  # under HA Patroni writes the same rules on every member
    out = [hba_step(ctx, backend, n, [], after=citus_done) for n in t.nodes()
           if n.role in (Role.COORDINATOR, Role.WORKER) and not n.is_external and n.name not in led_by_patroni]
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is None:
        return out
    replicas = t.nodes_by_role(Role.ANALYTICS_REPLICA)
    fdw = FdwService(ctx) if fdw_enabled(ctx) else None
    for node in (primary, *replicas):
        rules = []
        if node is primary:
            rules.append(HbaRule(t.analytics.database, ReplicationService.user,
                                 tuple(backend.source_address(r) for r in replicas)))
        if fdw is not None and fdw.source.name == node.name:
            rules.append(HbaRule(t.analytics.database, fdw.user, (backend.source_address(fdw.coordinator),)))
        # An external node's pg_hba.conf is its administrator's; under HA, Patroni's (every member alike).
        if not node.is_external and node.name not in led_by_patroni:
            out.append(hba_step(ctx, backend, node, rules))
    return out
