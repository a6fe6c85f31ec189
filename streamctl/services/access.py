"""Who may connect to the analytics nodes from where (pg_hba): the replicas' replication role on the
primary, the FDW's reader from the coordinator on its source node; password logins otherwise."""

from __future__ import annotations

from streamctl.backends.base import Backend
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.services.fdw import FdwService, fdw_enabled
from streamctl.services.postgres import HbaRule, hba_step
from streamctl.services.replication import ReplicationService
from streamctl.steps import ConfigStep


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    t = ctx.topology
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is None:
        return []
    replicas = t.nodes_by_role(Role.ANALYTICS_REPLICA)
    fdw = FdwService(ctx) if fdw_enabled(ctx) else None
    out = []
    for node in (primary, *replicas):
        rules = []
        if node is primary:
            rules.append(HbaRule(t.analytics.database, ReplicationService.user,
                                 tuple(backend.source_address(r) for r in replicas)))
        if fdw is not None and fdw.source.name == node.name:
            rules.append(HbaRule(t.analytics.database, fdw.user, (backend.source_address(fdw.coordinator),)))
        if not node.is_external:  # an external node's pg_hba.conf is its administrator's
            out.append(hba_step(ctx, backend, node, rules))
    return out
