"""Patroni's dynamic configuration under ha, kept by `up` on each group (each has its own copy: Patroni keys it
per Citus group):

- failsafe_mode on, so that a leader keeps serving as primary while etcd is unreachable or has lost its quorum,
  for as long as every member of its group answers its REST calls (Patroni's DCS failsafe mode); without it
  Patroni demotes every primary when the DCS goes;
- check_timeline on, so that a member whose timeline is behind the group's last one in the DCS (a former leader
  back from a frozen host, not yet rewound) never takes the leader key: without it, such a member can win a
  leader race with a stale copy, and the new leader's writes are then rewound away;
- postgresql.remove_data_directory_on_rewind_failure and ..._on_diverged_timelines on, so that a former leader
  whose pg_rewind fails against a healthy leader (seen on Swarm after a frozen host returned: "could not find
  previous WAL record" at the fork), or that cannot be rewound, is cloned again by its Patroni instead of staying
  in "start failed" until someone runs `streamctl reinit`. What it loses is its copy past the fork, which no
  synchronous commit was acknowledged from and which pg_rewind would have discarded too;
- the timing (ttl, loop_wait, retry_timeout), maximum_lag_on_failover, synchronous_mode, use_pg_rewind and
  use_slots of `ha:`, which a Citus group bootstrapped by a member other than its node's own lacks (`kept_settings`);
- the PostgreSQL parameters of the group (patroni.dcs_parameters): what the topology changes later (e.g.
  `analytics.max_slot_wal_keep_size`, backups turned off) reaches the running members, and a group an earlier
  release's standby bootstrapped gets the node's settings. A parameter that needs a restart leaves members
  pending one: their Patroni restarts them, standbys first, the leader last (ha/restart.py)."""

from __future__ import annotations

import re
import time
from typing import Any

from streamctl.backends.base import Backend, group_ready
from streamctl.config.members import Group, ha_groups, may_lead
from streamctl.config.model import Node, Topology
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.ha import rest, restart
from streamctl.ha.patroni import dcs_core, dcs_parameters
from streamctl.ha.secrets import ha_secrets
from streamctl.readiness import Readiness
from streamctl.replication import catalog
from streamctl.steps import ConfigStep

DCS_STEP = "patroni dynamic configuration"  # keeps every setting of kept_settings
DYNAMIC: dict[str, Any] = {"failsafe_mode": True, "check_timeline": True, "postgresql": {
    "remove_data_directory_on_rewind_failure": True, "remove_data_directory_on_diverged_timelines": True}}
LEFT_SLOTS_STEP = "standbys' slots left by Patroni"
# Parameters streamctl puts in a group's dynamic configuration only for some topologies: one the topology no
# longer asks for is removed (archive_mode kept on after backups are turned off would keep every WAL segment).
# Others the group's configuration holds are an operator's (`patronictl edit-config`) and left alone.
TAKEN_AWAY = ("archive_mode", "archive_timeout")


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    groups = ha_groups(ctx.topology, ctx.store.pinned())
    led = {g.node.name for g in groups}
    return [_failsafe_step(ctx, g) for g in groups if not g.node.is_external] + [
        _left_slots_step(ctx, n) for n in ctx.topology.nodes() if may_lead(ctx.topology, n) and n.name not in led]


def standby_slot_pattern(node: Node) -> str:
    """The names Patroni gives its physical slots for the node's standbys `<node>-<k>` (a POSIX regex)."""
    return "^" + re.sub(r"[-.]", "_", node.name.lower()) + "_[0-9]+$"


def _left_slots_step(ctx: ClusterContext, node: Node) -> ConfigStep:
    pattern = standby_slot_pattern(node)

    def left(conn: Any) -> list[str]:
        rows = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' "
                            "AND NOT active AND slot_name ~ %s ORDER BY 1", (pattern,)).fetchall()
        return [str(r[0]) for r in rows]

    def pending() -> list[str]:
        with ctx.pg_connect(node.name, "postgres") as conn:
            return [f"drop slot {s}: Patroni's for a standby gone with ha (unused, it keeps WAL)" for s in left(conn)]

    def apply() -> None:
        with ctx.pg_connect(node.name, "postgres") as conn:
            for slot in left(conn):
                catalog.drop_slot(conn, slot)

    return ConfigStep(node.name, LEFT_SLOTS_STEP, pending, apply, after=())


def missing_settings(config: dict[str, Any], wanted: dict[str, Any] = DYNAMIC) -> dict[str, Any]:
    """The part of `wanted` that Patroni's dynamic configuration `config` lacks or holds otherwise (nested
    sections compared key by key: a PATCH merges them)."""
    out: dict[str, Any] = {}
    for k, v in wanted.items():
        have = config.get(k)
        if isinstance(v, dict):
            inner = missing_settings(have if isinstance(have, dict) else {}, v)
            if inner:
                out[k] = inner
        elif have != v:
            out[k] = v
    return out


def _names(change: dict[str, Any], prefix: str = "") -> list[str]:
    """`section.key value` for each setting of `change` (on/off for a flag)."""
    return [n for k, v in change.items() for n in (_names(v, f"{prefix}{k}.") if isinstance(v, dict) else [
        f"{prefix}{k} removed" if v is None else
        f"{prefix}{k} {({True: 'on', False: 'off'}.get(v, v)) if isinstance(v, bool) else v}"])]


def kept_settings(t: Topology, group: Group) -> dict[str, Any]:
    """What `up` keeps in the group's dynamic configuration: DYNAMIC, the timing, synchronous mode and rewind of
    `ha:` (patroni.dcs_core) and the group's PostgreSQL parameters (None: removed). A Citus group's may lack them:
    Patroni's Citus mode gives every member a `bootstrap` section, so in an earlier release a member other than
    the node's own could bootstrap the group, with Patroni's defaults (ttl 30, loop_wait 10, no pg_rewind,
    quorum) and without the node's settings."""
    core = dcs_core(t)
    parameters: dict[str, Any] = {k: None for k in TAKEN_AWAY}
    parameters.update(dcs_parameters(t, group))
    return {**core, **DYNAMIC, "postgresql": {**core["postgresql"], **DYNAMIC["postgresql"],
                                              "parameters": parameters}}


def _failsafe_step(ctx: ClusterContext, group: Group) -> ConfigStep:
    ca = ctx.ca_path() if ctx.tls_on else None

    def missing() -> dict[str, Any]:
        return missing_settings(rest.dynamic_config(group.members, ca), kept_settings(ctx.topology, group))

    managed = set(kept_settings(ctx.topology, group)["postgresql"]["parameters"])

    def pending() -> list[str]:
        return [f"{n} in Patroni's configuration" for n in _names(missing())] + [
            f"restart {name} (Patroni) to take {', '.join(reasons)}"
            for name, reasons in restart.pending(group, ca, managed).items()]

    def apply() -> None:
        password = ha_secrets(ctx.store.root)["rest_password"]
        loop_wait = ctx.topology.ha.loop_wait if ctx.topology.ha else 10
        change = missing()
        if change:
            asked = time.time()
            status, answer = rest.patch_config(group.members, change, password, ca)
            if status != 200:
                raise BackendError(f"Patroni refused to set {', '.join(_names(change))} for {group.node.name}: "
                                   f"{answer or status}")
            if "parameters" in change.get("postgresql", {}):  # what they leave pending is known once applied
                rest.wait_loops_since(group.members, asked, ca, 3 * loop_wait + 30,
                                      f"{group.node.name}'s members applying their changed configuration",
                                      silent_ok=True)
            if "synchronous_mode" in change:  # the group picks its sync standby again: the next steps may need one
                Readiness(f"{group.node.name} led with its standbys under synchronous_mode "
                          f"{change['synchronous_mode']}", group_ready(ctx, group.members), 60.0, interval=0.5,
                          hint="see `streamctl status`").wait()
        restart.restart_pending(group, password, ca, group_ready(ctx, group.members), 120.0, managed)

    return ConfigStep(group.node.name, DCS_STEP, pending, apply, after=())
