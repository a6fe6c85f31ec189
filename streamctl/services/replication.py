"""Logical replication: a least-privilege role and a publication on the primary, a subscription per replica."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from streamctl.backends.base import Backend
from streamctl.config.model import Node, Role
from streamctl.context import REPLICATION_USER, ClusterContext
from streamctl.names import PUBLICATION, subscription_name
from streamctl.readiness import Readiness
from streamctl.services.postgres import ensure_login_role, grant_read, reader_pending
from streamctl.steps import ConfigStep


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

        return ConfigStep(self.primary.name, "replication role", pending, apply)

    def _published(self, conn: psycopg.Connection[Any]) -> list[str] | None:
        if not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)).fetchone():
            return None
        rows = conn.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,))
        return sorted(r[0] for r in rows.fetchall())

    def publication_step(self) -> ConfigStep:
        def pending() -> list[str]:
            with self.ctx.pg_connect(self.primary.name) as conn:
                published = self._published(conn)
            if published is None:
                return [f"create publication {PUBLICATION} for {', '.join(self.tables)}"]
            if published != sorted(self.tables):
                return [f"set publication tables to {', '.join(self.tables)}"]
            return []

        def apply() -> None:
            tables = sql.SQL(", ").join(sql.Identifier(t) for t in self.tables)
            with self.ctx.pg_connect(self.primary.name) as conn:
                verb = "CREATE PUBLICATION {} FOR TABLE {}" if self._published(conn) is None \
                    else "ALTER PUBLICATION {} SET TABLE {}"
                conn.execute(sql.SQL(verb).format(sql.Identifier(PUBLICATION), tables))

        return ConfigStep(self.primary.name, "publication", pending, apply)

    # -- replicas ---------------------------------------------------------------------------------
    def conninfo(self) -> str:
        ep = self.ctx.endpoint(self.primary.name)
        return (f"host={ep.internal_host} port={ep.internal_port} dbname={self.database} "
                f"user={REPLICATION_USER} password={self.ctx.secrets['replication_password']} "
                f"application_name=streamctl")

    def subscription_step(self, replica: Node) -> ConfigStep:
        name = subscription_name(replica.name)

        def state(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
            row = conn.execute("SELECT subenabled, subconninfo FROM pg_subscription WHERE subname = %s",
                               (name,)).fetchone()
            if row is None:
                return None
            rels = conn.execute("SELECT c.relname, r.srsubstate FROM pg_subscription_rel r "
                                "JOIN pg_subscription s ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid "
                                "WHERE s.subname = %s", (name,)).fetchall()
            return {"enabled": row[0], "conninfo": row[1], "tables": {r[0]: r[1] for r in rels}}

        def pending() -> list[str]:
            with self.ctx.pg_connect(replica.name) as conn:
                st = state(conn)
            if st is None:
                return [f"create subscription {name} to {self.primary.name}"]
            out = []
            if st["conninfo"] != self.conninfo():
                out.append("update the subscription's connection")
            if not st["enabled"]:
                out.append("enable the subscription")
            if sorted(st["tables"]) != sorted(self.tables):
                out.append("refresh the subscription's tables")
            syncing = [t for t, s in st["tables"].items() if s != "r"]
            if syncing:
                out.append(f"wait for initial sync of {', '.join(sorted(syncing))}")
            return out

        def apply() -> None:
            with self.ctx.pg_connect(replica.name) as conn:
                st = state(conn)
                ident = sql.Identifier(name)
                if st is None:
                    self._drop_stale_slot(name)
                    conn.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
                        ident, sql.Literal(self.conninfo()), sql.Identifier(PUBLICATION)))
                else:
                    if st["conninfo"] != self.conninfo():
                        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                            ident, sql.Literal(self.conninfo())))
                    if not st["enabled"]:
                        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(ident))
                    if sorted(st["tables"]) != sorted(self.tables):
                        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION").format(ident))
            self.wait_synced(replica)

        return ConfigStep(replica.name, "subscription", pending, apply)

    def _drop_stale_slot(self, slot: str) -> None:
        """A replica rebuilt from scratch leaves its old slot on the primary; an inactive one can go."""
        with self.ctx.pg_connect(self.primary.name) as conn:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is not None and not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))

    def wait_synced(self, replica: Node, timeout: float = 300.0) -> None:
        """Ready when every table of the subscription is in state `r` (ready)."""
        name = subscription_name(replica.name)

        def probe() -> bool:
            with self.ctx.pg_connect(replica.name) as conn:
                rows = conn.execute("SELECT r.srsubstate FROM pg_subscription_rel r JOIN pg_subscription s "
                                    "ON s.oid = r.srsubid WHERE s.subname = %s", (name,)).fetchall()
            return len(rows) == len(self.tables) and all(r[0] == "r" for r in rows)

        Readiness(f"initial sync of {replica.name}", probe, timeout, interval=0.2,
                  logs=lambda: self.backend.logs(replica, 20),
                  hint=f"see `streamctl logs {replica.name}` and `streamctl logs {self.primary.name}`").wait()
