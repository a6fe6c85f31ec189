"""Logical replication: a least-privilege role and a publication on the primary, a subscription per replica."""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from streamctl.backends.base import Backend
from streamctl.config.members import peer_addresses
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.names import PUBLICATION, REPLICATION_USER, subscription_name
from streamctl.replication import catalog
from streamctl.replication.catchup import streaming, table_ready, wait_caught_up, wait_synced
from streamctl.services.permanent_slots import replayed
from streamctl.services.postgres import HBA_STEP, ensure_login_role, grant_read, reader_pending, schema_step
from streamctl.steps import ConfigStep

ROLE_STEP = "replication role"
PUBLICATION_STEP = "publication"
STRAY_SLOTS_STEP = "stray slots"


def primary_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: the analytics schema on the primary, then the replication role and the publication."""
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is None:
        return []
    repl = ReplicationService(ctx, backend)
    return [schema_step(ctx, primary, "analytics", after_distribution=False), replayed(ctx, repl.role_step()),
            repl.publication_step(), repl.stray_slots_step()]


def replica_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: per replica, the schema (logical replication copies rows, not DDL), then the subscription."""
    if ctx.first(Role.ANALYTICS_PRIMARY) is None:
        return []
    repl = ReplicationService(ctx, backend)
    out = []
    for replica in repl.replicas:
        out += [schema_step(ctx, replica, "analytics", after_distribution=False), repl.subscription_step(replica)]
    return out


class ReplicationService:
    user = REPLICATION_USER

    def __init__(self, ctx: ClusterContext, backend: Backend) -> None:
        self.ctx = ctx
        self.backend = backend
        primary = ctx.first(Role.ANALYTICS_PRIMARY)
        assert primary is not None
        self.primary: Node = primary
        self.replicas = ctx.topology.nodes_by_role(Role.ANALYTICS_REPLICA)
        self.tables = ctx.topology.analytics.tables
        self.database = ctx.topology.analytics.database

    # -- primary ----------------------------------------------------------------------------------
    def role_step(self) -> ConfigStep:
        """REPLICATION + SELECT on the published tables: what a subscriber's connection needs, no more."""

        def pending() -> list[str]:
            with self.ctx.pg_connect(self.primary.name) as conn:
                return reader_pending(conn, REPLICATION_USER, self.tables)

        def apply() -> None:
            with self.ctx.pg_connect(self.primary.name) as conn:
                ensure_login_role(conn, REPLICATION_USER, self.ctx.secrets["replication_password"],
                                  "REPLICATION", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE")
                grant_read(conn, REPLICATION_USER, self.database, "public", self.tables)

        return ConfigStep(self.primary.name, ROLE_STEP, pending, apply, after=())

    def publication_step(self) -> ConfigStep:
        def pending() -> list[str]:
            with self.ctx.pg_connect(self.primary.name) as conn:
                published = catalog.published_tables(conn)
            if published is None:
                return [f"create publication {PUBLICATION} for {', '.join(self.tables)}"]
            if published != sorted(self.tables):
                return [f"set publication tables to {', '.join(self.tables)}"]
            return []

        def apply() -> None:
            with self.ctx.pg_connect(self.primary.name) as conn:
                catalog.publish(conn, self.tables, create=catalog.published_tables(conn) is None)

        return ConfigStep(self.primary.name, PUBLICATION_STEP, pending, apply, after=())

    def owned_slots(self) -> set[str]:
        """The slots the topology's replicas subscribe through (one each, named like the subscription)."""
        return {subscription_name(r.name) for r in self.replicas}

    def stray_slots_step(self) -> ConfigStep:
        """Slots of replicas no longer in the topology keep WAL on the primary until its disk is full: drop
        the inactive `streamctl_sub_*` slots no replica owns. An active one (a replica the topology forgot,
        still running) is left to `up --remove-orphans`; `verify` reports it."""

        def strays() -> list[catalog.SlotInfo]:
            with self.ctx.pg_connect(self.primary.name) as conn:
                found = catalog.streamctl_slots(conn)
            owned = self.owned_slots()
            return [s for s in found if s.name not in owned and not s.active]

        def pending() -> list[str]:
            return [f"drop slot {s.name} (inactive, no replica in the topology owns it; holds "
                    f"{s.retained_bytes} bytes of WAL)" for s in strays()]

        def apply() -> None:
            with self.ctx.pg_connect(self.primary.name) as conn:
                for slot in strays():
                    if catalog.slot_active(conn, slot.name) is False:  # still unused: no replica came back
                        catalog.drop_slot(conn, slot.name)

        return ConfigStep(self.primary.name, STRAY_SLOTS_STEP, pending, apply, after=())

    # -- replicas ---------------------------------------------------------------------------------
    def conninfo(self, replica: str) -> str:
        """How `replica` reaches the primary: with TLS on, verifying it against the CA inside the replica. Under
        HA every member with target_session_attrs=primary: the apply worker reconnects to whichever leads."""
        ep = self.ctx.endpoint(self.primary.name)
        members = peer_addresses(self.ctx.topology, self.primary.name, ep.internal_host, ep.internal_port)
        where: dict[str, object] = {"host": ep.internal_host, "port": ep.internal_port}
        if members:
            leader = pg_engine.leader_params(members)
            where = {"host": leader["host"], "port": leader["port"]}
        return pg_engine.conninfo(**where, dbname=self.database,
                                  user=REPLICATION_USER, password=self.ctx.secrets["replication_password"],
                                  application_name="streamctl",
                                  **self.ctx.pg_ssl(client=replica, target=self.primary.name),
                                  target_session_attrs="primary" if members else None)

    def subscription_step(self, replica: Node) -> ConfigStep:
        name = subscription_name(replica.name)

        def pending() -> list[str]:
            with self.ctx.pg_connect(replica.name) as conn:
                sub = catalog.subscription(conn, name)
                states = catalog.table_states(conn, name)
                restored = sub is None and self._restored_with_primary(conn, replica.name)
            if sub is None:
                return [f"create subscription {name} to {self.primary.name}"
                        + (" (restored with it: no initial copy)" if restored else "")]
            out = []
            if sub.conninfo != self.conninfo(replica.name):
                out.append("update the subscription's connection")
            if not sub.enabled:
                out.append("enable the subscription")
            if sorted(states) != sorted(self.tables):
                out.append("refresh the subscription's tables")
            syncing = [t for t, s in states.items() if not table_ready(s)]
            if syncing:
                out.append(f"wait for initial sync of {', '.join(sorted(syncing))}")
            elif sub.enabled and streaming(self.ctx, self.primary.name, replica.name) is not True:
                out.append(f"wait for it to stream from {self.primary.name} again and catch up")
            return out

        def apply() -> None:
            replaced: int | None = None
            with self.ctx.pg_connect(replica.name) as conn:
                sub = catalog.subscription(conn, name)
                if sub is None and self._restored_with_primary(conn, replica.name):
                    with conn.transaction():  # the mark goes with the subscription it stood for
                        catalog.create_subscription(conn, name, self.conninfo(replica.name), copy_data=False,
                                                    slot=name)
                        catalog.drop_restored_mark(conn)
                elif sub is None:
                    if catalog.restored_at(conn) is not None:  # restored, but its slot is not there: the copy,
                        catalog.empty_tables(conn, self.tables)  # from empty tables
                        catalog.drop_restored_mark(conn)
                    self._drop_stale_slot(name)
                    self._subscribe(conn, name, replica.name)
                else:
                    if sub.conninfo != self.conninfo(replica.name):
                        with self.ctx.pg_connect(self.primary.name, self.database) as primary:
                            replaced = catalog.slot_pid(primary, name)
                        catalog.set_connection(conn, name, self.conninfo(replica.name))
                    if not sub.enabled:
                        catalog.enable(conn, name)
                    if sorted(catalog.table_states(conn, name)) != sorted(self.tables):
                        catalog.refresh(conn, name)
            logs = lambda: self.backend.logs(replica, 20)  # noqa: E731
            wait_synced(self.ctx, replica.name, self.primary.name, self.tables, 300.0, logs=logs)
            # A repaired subscription (or one that had stopped streaming) counts as done only once it has
            # caught up with the primary, as on the first sync: `verify` right after `up` sees no lag.
            wait_caught_up(self.ctx, replica.name, self.primary.name, 300.0, logs=logs, replaced=replaced)

        # What a subscriber needs of the primary: the role it logs in as, the publication, and pg_hba
        # admitting it; nothing of the other replicas or of the metadata side.
        primary = self.primary.name
        return ConfigStep(replica.name, "subscription", pending, apply,
                          after=((primary, ROLE_STEP), (primary, PUBLICATION_STEP), (primary, HBA_STEP)))

    def _subscribe(self, conn: Connection[Any], name: str, replica: str) -> None:
        """A new subscription. When the tables are empty on both sides there is nothing to copy: the
        tables start ready, without initial-sync workers. That holds only if the primary is still empty
        once the subscription's slot exists (anything committed later is streamed); otherwise a row
        committed before the slot could be missing, so it starts over, emptying the replica's copies of
        what streamed meanwhile, with the initial copy."""
        conninfo = self.conninfo(replica)
        with self.ctx.pg_connect(self.primary.name) as primary:
            empty = not catalog.any_rows(conn, self.tables) and not catalog.any_rows(primary, self.tables)
            catalog.create_subscription(conn, name, conninfo, copy_data=not empty)
            if not empty or not catalog.any_rows(primary, self.tables):
                return
        catalog.drop_subscription(conn, name)
        catalog.empty_tables(conn, self.tables)
        catalog.create_subscription(conn, name, conninfo)

    def _restored_with_primary(self, conn: Connection[Any], replica: str) -> bool:
        """The replica subscribes without the initial copy only when a restore copied it from the primary's
        backup (its mark, backup/replicas.py) and the slot made for it then waits unused on the primary,
        starting where the mark says its rows stand: a replica made any other way gets the copy."""
        at = catalog.restored_at(conn)
        if at is None:
            return False
        with self.ctx.pg_connect(self.primary.name) as primary:
            return catalog.slot_waits_at(primary, subscription_name(replica), at)

    def _drop_stale_slot(self, slot: str) -> None:
        """A replica rebuilt from scratch leaves its old slot on the primary; an inactive one can go."""
        with self.ctx.pg_connect(self.primary.name) as conn:
            if catalog.slot_active(conn, slot) is False:
                catalog.drop_slot(conn, slot)
