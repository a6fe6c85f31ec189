"""Under HA, the analytics replicas' slots as Patroni's permanent logical slots (streamctl/ha/analytics.py): the
analytics group's dynamic configuration declares one per replica of the topology and forgets those of replicas
gone, and `up` waits until every streaming standby holds a copy, so a failover right after keeps them.

Also what a role made on a group's leader needs before a client logs in with a multi-host string: libpq tries
the members in turn and stops at the first that refuses the password, so a standby that has not replayed the
role yet would fail the login although the leader accepts it (`replayed`)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from streamctl.backends.base import Backend
from streamctl.config.members import Group, Member, ha_groups
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.ha import analytics, rest
from streamctl.ha.secrets import ha_secrets
from streamctl.readiness import Readiness
from streamctl.replication import catalog
from streamctl.steps import ConfigStep

PERMANENT_SLOTS_STEP = "permanent slots"
SUBSCRIPTION_STEP = "subscription"  # services/replication.py's name for a replica's subscription step


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: one step on the analytics primary when it is under HA, after every replica's subscription."""
    return [PermanentSlots(ctx).step()] if any(not g.citus for g in ha_groups(ctx.topology)) else []


class PermanentSlots:
    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.ca = ctx.ca_path() if ctx.tls_on else None
        self._nudged = float("-inf")

    @property
    def group(self) -> Group:
        """The analytics group, its members where streamctl reaches them: read when asked, as on Swarm a member's
        address is its host's, pinned once `up` has placed it (`StateStore.pinned`)."""
        return next(g for g in ha_groups(self.ctx.topology, self.ctx.store.pinned()) if not g.citus)

    def changes(self) -> dict[str, Any]:
        return analytics.slot_changes(self.ctx.topology, analytics.declared_slots(self.group, self.ca))

    def _standby_view(self, member: Member) -> tuple[dict[str, str | None], str | None]:
        """The logical slots a standby holds, each with the WAL segment its restart point is in, and the standby's
        oldest WAL segment (both as a WAL file name's last 16 digits), asked of that member alone."""
        params = {**self.ctx.pg_ssl(target=self.group.node.name), "connect_timeout": 5}
        uri = pg_engine.uri(member.node.host, member.port, self.ctx.topology.analytics.database,
                            self.ctx.topology.pg_user, self.ctx.secrets["postgres_password"], params)
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute("SELECT min(right(name, 16)), (SELECT setting::bigint FROM pg_settings WHERE name = "
                               "'wal_segment_size') FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'").fetchone()
            slots = conn.execute("SELECT slot_name, restart_lsn::text FROM pg_replication_slots "
                                 "WHERE slot_type = 'logical'").fetchall()
        oldest, size = (str(row[0]) if row and row[0] else None), (int(row[1]) if row and row[1] else 16 << 20)
        return {str(n): segment(str(lsn), size) if lsn else None for n, lsn in slots}, oldest

    def _nudge(self) -> None:
        """A checkpoint on the leader, at most every 15 s: it logs the running transactions, from which the
        replica's walsender moves its slot's restart point forward once the replica confirms what it received."""
        now = time.monotonic()
        if now - self._nudged >= 15.0:
            self._nudged = now
            with self.ctx.pg_connect(self.group.node.name) as conn:
                conn.execute("CHECKPOINT")

    def missing_on_standbys(self) -> list[str]:
        wanted = set(analytics.wanted_slots(self.ctx.topology))
        names = {m.name: m for m in self.group.members}
        out = []
        states = rest.group_members(self.group.members, self.ca)
        ha = self.ctx.topology.ha
        if ha is not None and ha.synchronous != "off" and not any(s.ha_role == "sync_standby" for s in states):
            out.append("wait for a synchronous standby again")  # the restarted one is Patroni's again next loop
        for s in states:
            if s.ha_role == "leader" or s.name not in names:
                continue
            if s.state != "streaming":  # Patroni restarts a standby to copy a slot: done once it streams again
                out.append(f"wait for {s.name} to stream (it is {s.state or 'unknown'})")
                continue
            held, oldest = self._standby_view(names[s.name])
            out += [f"wait for Patroni to copy slot {slot} to {s.name}" for slot in sorted(wanted - set(held))]
            # A copy whose restart point is in WAL older than the standby holds (the slot was made before the standby
            # was cloned: a restore's, a conversion's) cannot be advanced there: Patroni copies it again and restarts
            # the standby each loop until the leader's slot has moved on.
            early = sorted(n for n, seg in held.items()
                           if n in wanted and seg is not None and oldest is not None and seg < oldest)
            if early:
                self._nudge()
            out += [f"wait for slot {n}'s restart point to reach WAL that {s.name} holds" for n in early]
        return out

    def step(self) -> ConfigStep:
        def pending() -> list[str]:
            out = [f"declare slot {n} permanent in Patroni" if spec else f"release slot {n} from Patroni (no "
                   "replica in the topology owns it)" for n, spec in self.changes().items()]
            return out or self.missing_on_standbys()

        def apply() -> None:
            changes = self.changes()
            if changes:
                password = ha_secrets(self.ctx.store.root)["rest_password"]
                analytics.declare_slots(self.group, changes, password, self.ca)
            released = [n for n, spec in changes.items() if spec is None]
            if released:  # Patroni leaves them to us (ignore_slots): an inactive one goes now
                with self.ctx.pg_connect(self.group.node.name) as conn:
                    for name in released:
                        if catalog.slot_active(conn, name) is False:
                            catalog.drop_slot(conn, name)
            Readiness(f"the replicas' slots copied to {self.group.node.name}'s standbys",
                      lambda: not self.missing_on_standbys(), 180.0, interval=1.0,
                      hint=f"see `streamctl logs {self.group.node.name}` (Patroni's log)").wait()

        replicas = self.ctx.topology.nodes_by_role(Role.ANALYTICS_REPLICA)
        return ConfigStep(self.group.node.name, PERMANENT_SLOTS_STEP, pending, apply,
                          after=tuple((r.name, SUBSCRIPTION_STEP) for r in replicas))


def segment(lsn: str, size: int) -> str:
    """The WAL file name's last 16 digits (log and segment number) of the segment holding `lsn` ('X/Y')."""
    high, low = lsn.split("/")
    number, per_log = ((int(high, 16) << 32) | int(low, 16)) // size, (1 << 32) // size
    return f"{number // per_log:08X}{number % per_log:08X}"


def replayed(ctx: ClusterContext, step: ConfigStep) -> ConfigStep:
    """`step` (a change on a node under HA: a role, a password) done only once the node's streaming standbys
    have replayed it; unchanged for a node that is not under HA."""
    if not any(g.node.name == step.node for g in ha_groups(ctx.topology)):
        return step

    def apply() -> None:
        step.apply()
        wait_replayed(ctx, step.node, step.name)

    return ConfigStep(step.node, step.name, step.pending, apply, step.after, step.in_node_order)


def wait_replayed(ctx: ClusterContext, node: str, what: str, conn: psycopg.Connection[Any] | None = None) -> None:
    """Under HA, until `node`'s streaming standbys have replayed `what` its leader just did (asked on `conn`, the
    leader's, else on a new connection each time); at once for a node not under HA."""
    group = next((g for g in ha_groups(ctx.topology) if g.node.name == node), None)
    if group is None:
        return
    standbys = [m.name for m in group.members]

    def behind() -> list[str]:
        if conn is not None:
            return catalog.standbys_behind(conn, standbys)
        with ctx.pg_connect(node) as fresh:
            return catalog.standbys_behind(fresh, standbys)

    Readiness(f"{node}'s standbys replaying its {what}", lambda: not behind(), 60.0, interval=0.2,
              hint=f"see `streamctl status` and `streamctl logs {node}`").wait()
