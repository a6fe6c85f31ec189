"""High availability (when the topology has an `ha:` section): per group (each Citus group, the analytics
primary's), one leader as Patroni's REST API sees it, every standby streaming within verify.max_lag_bytes, a
synchronous standby when `synchronous`, and, for a Citus group, the coordinator's pg_dist_node naming the leader
as the group's primary. With etcd unreachable or without quorum each group fails, saying so and whether its
primary still serves in Patroni's failsafe mode."""

from __future__ import annotations

from functools import partial
from typing import Any

from streamctl.citus import catalog
from streamctl.config.members import Group, ha_groups
from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.ha import dcs, rest
from streamctl.replication import catalog as replication
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed

GROUPS = "ha.groups"


def skip_reason(t: Topology) -> str | None:
    return None if t.ha_on else "no ha section in the topology"


def check_groups(ctx: ClusterContext) -> list[CheckResult]:
    coordinator = ctx.first(Role.COORDINATOR)
    assert ctx.topology.ha is not None
    synchronous = ctx.topology.ha.synchronous != "off"
    ca = ctx.ca_path() if ctx.tls_on else None
    problem = dcs.dcs_state(ctx.topology, ctx.store.pinned()).problem

    def one(group: Group) -> Verdict:
        if problem is not None:  # Patroni's view of the group lives in etcd: say why there is none
            views = dcs.members_without_dcs(group, ca)
            return failed(dcs.explain(group, problem, views), dcs=problem,
                          failsafe=any(v.primary and v.failsafe_active for v in views))
        states = rest.group_members(group.members, ca)
        data: dict[str, Any] = {"members": {s.name: s.ha_role for s in states}}
        leaders = [s for s in states if s.ha_role == "leader"]
        if len(leaders) != 1:
            return failed(f"{len(leaders)} leaders as Patroni sees the group (one wanted)", **data)
        down = sorted({m.name for m in group.members} - {s.name for s in states})
        with ctx.pg_connect(group.node.name) as conn:  # the leader's own view, fresh
            lags = replication.standby_lags(conn, [s.name for s in states if s is not leaders[0]])
        data["lag_bytes"] = {name: lag for name, (_, lag) in lags.items()}
        limit = ctx.topology.verify.max_lag_bytes
        behind = [f"{s.name} ({why})" for s in states if s is not leaders[0] and (why := _behind(lags, s.name, limit))]
        if down or behind:
            return failed(f"standbys down: {', '.join(down) or 'none'}; not streaming within "
                          f"verify.max_lag_bytes: {', '.join(behind) or 'none'} (`streamctl up` restarts them)",
                          **data)
        if synchronous and not any(s.ha_role == "sync_standby" for s in states):
            return failed("no synchronous standby, though ha.synchronous asks for one", **data)
        registered: tuple[str, int] | None = (leaders[0].host, leaders[0].port)  # analytics: no pg_dist_node
        if group.number is not None and coordinator is not None:
            with ctx.pg_connect(coordinator.name) as conn:
                registered = catalog.group_leaders(conn).get(group.number)
        if registered != (leaders[0].host, leaders[0].port):
            return failed(f"pg_dist_node names {registered} as the group's primary, Patroni {leaders[0].name}",
                          **data)
        return passed(f"{leaders[0].name} leads (timeline {leaders[0].timeline}), {len(states) - 1} standby(s) "
                      "streaming", **data)

    return [guarded(GROUPS, g.node.name, partial(one, g)) for g in ha_groups(ctx.topology, ctx.store.pinned())]


def _behind(lags: dict[str, tuple[str, int | None]], name: str, limit: int) -> str:
    """Why the standby `name` is not streaming within `limit` bytes of its leader; '' when it is."""
    state, lag = lags.get(name, ("not connected to the leader", None))
    if state != "streaming":
        return state
    return "" if lag is not None and lag <= limit else f"{'unknown' if lag is None else lag} bytes behind"
