"""The gateway's PostgreSQL role: read-only, on every node it reads, instead of the superuser.

It may SELECT the catalogue, the analytics tables and (through its own user mapping) the foreign tables,
and read replication statistics (pg_monitor) for the dashboard. Roles are not replicated, so each
analytics node gets it; with Citus, the role and the grants propagate to the workers, and Citus's
authinfo gives the coordinator its password for node-to-node connections.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from streamctl.backends.base import Backend
from streamctl.citus import catalog
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.names import DISTRIBUTED_TABLES, FDW_SERVER, FDW_USER, GATEWAY_USER, REFERENCE_TABLES
from streamctl.readiness import Readiness
from streamctl.services.permanent_slots import replayed
from streamctl.services.postgres import (
    ensure_read_only_role,
    grant_read,
    missing_select_grants,
    reader_pending,
    role_exists,
)
from streamctl.steps import ConfigStep

CATALOGUE_TABLES = (*DISTRIBUTED_TABLES, *REFERENCE_TABLES)


def _is_monitor(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT pg_has_role(%s, 'pg_monitor', 'member')", (GATEWAY_USER,)).fetchone()
    return bool(row and row[0])


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: the gateway's role on the coordinator and every analytics node, when the gateway is on.
    External nodes are left out: there the gateway uses the node's own role (the operator's, read-only)."""
    if not ctx.topology.gateway.enabled:
        return []
    external = {n.name for n in ctx.topology.nodes() if n.is_external}
    return [s for s in GatewayRoleService(ctx).steps() if s.node not in external]


class GatewayRoleService:
    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        t = ctx.topology
        self.fdw = t.fdw.enabled and t.analytics.enabled
        self.fdw_schema = t.fdw.schema_name
        self.fdw_tables = t.fdw_tables

    def _password(self) -> str:
        return self.ctx.secrets["gateway_password"]

    def steps(self) -> list[ConfigStep]:
        t = self.ctx.topology
        out = []
        coordinator = self.ctx.first(Role.COORDINATOR)
        if coordinator is not None:
            out.append(replayed(self.ctx, self._coordinator_step(coordinator)))  # under HA: on its standbys too
        if coordinator is not None and t.citus and t.ha_on:  # workers fetch from workers as the gateway too
            out += [self._worker_authinfo_step(w, coordinator) for w in t.nodes_by_role(Role.WORKER)]
        for node in (*t.nodes_by_role(Role.ANALYTICS_PRIMARY), *t.nodes_by_role(Role.ANALYTICS_REPLICA)):
            out.append(replayed(self.ctx, self._analytics_step(node)))  # under HA: on the standbys too
        return out

    def _analytics_step(self, node: Node) -> ConfigStep:
        tables = self.ctx.topology.analytics.tables

        def pending() -> list[str]:
            with self.ctx.pg_connect(node.name) as conn:
                if not role_exists(conn, GATEWAY_USER):
                    return [f"create read-only role {GATEWAY_USER}"]
                return reader_pending(conn, GATEWAY_USER, tables) + ([] if _is_monitor(conn) else ["grant pg_monitor"])

        def apply() -> None:
            with self.ctx.pg_connect(node.name) as conn:
                self._role(conn)
                grant_read(conn, GATEWAY_USER, self.ctx.topology.analytics.database, "public", tables)

        return ConfigStep(node.name, "gateway role", pending, apply, after=())

    def _role(self, conn: psycopg.Connection[Any]) -> None:
        ensure_read_only_role(conn, GATEWAY_USER, self._password())
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(GATEWAY_USER)))

    def _coordinator_step(self, node: Node) -> ConfigStep:
        citus = self.ctx.topology.citus

        def pending() -> list[str]:
            with self.ctx.pg_connect(node.name) as conn:
                if not role_exists(conn, GATEWAY_USER):
                    return [f"create read-only role {GATEWAY_USER}"]
                out = []
                missing = missing_select_grants(conn, GATEWAY_USER, CATALOGUE_TABLES)
                if self.fdw:
                    missing += missing_select_grants(
                        conn, GATEWAY_USER, tuple(f"{self.fdw_schema}.{t}" for t in self.fdw_tables))
                    if not conn.execute("SELECT 1 FROM pg_user_mappings WHERE srvname = %s AND usename = %s",
                                        (FDW_SERVER, GATEWAY_USER)).fetchone():
                        out.append("user mapping for the gateway")
                if missing:
                    out.append(f"grant select on {', '.join(missing)}")
                if citus and not catalog.authinfo_stored(conn, GATEWAY_USER):
                    out.append("node-to-node credentials for the gateway")
                if not _is_monitor(conn):
                    out.append("grant pg_monitor")
            return out

        def apply() -> None:
            with self.ctx.pg_connect(node.name) as conn:
                if citus:  # grants on reference and distributed tables together: one connection per node
                    conn.execute("SET citus.multi_shard_modify_mode TO 'sequential'")
                self._role(conn)
                grant_read(conn, GATEWAY_USER, self.ctx.topology.metadata.database, "public", CATALOGUE_TABLES)
                if self.fdw:
                    grant_read(conn, GATEWAY_USER, self.ctx.topology.metadata.database, self.fdw_schema,
                               self.fdw_tables)
                    conn.execute(sql.SQL("DROP USER MAPPING IF EXISTS FOR {} SERVER {}").format(
                        sql.Identifier(GATEWAY_USER), sql.Identifier(FDW_SERVER)))
                    conn.execute(sql.SQL("CREATE USER MAPPING FOR {} SERVER {} OPTIONS (user {}, password {})")
                                 .format(sql.Identifier(GATEWAY_USER), sql.Identifier(FDW_SERVER),
                                         sql.Literal(FDW_USER), sql.Literal(self.ctx.secrets["fdw_password"])))
                if citus:
                    self._authinfo(conn)

        return ConfigStep(node.name, "gateway role", pending, apply, after=())

    def _worker_authinfo_step(self, node: Node, coordinator: Node) -> ConfigStep:
        """Under HA, a worker's own pg_dist_authinfo holds the gateway's password too (Citus copies no row of
        it): a query the workers run among themselves as the gateway (a repartition join) logs in.

        The row needs the role on the worker, which Citus creates there when the coordinator's Patroni
        registers the group: a new group's (`scale`, where the coordinator's steps are not run) waits
        for that rather than fail on pg_dist_authinfo's role check."""

        def pending() -> list[str]:
            with self.ctx.pg_connect(node.name) as conn:
                stored = catalog.authinfo_stored(conn, GATEWAY_USER, pg_engine.authinfo(self._password()))
            return [] if stored else ["node-to-node credentials for the gateway"]

        def has_role() -> bool:
            with self.ctx.pg_connect(node.name) as conn:
                return role_exists(conn, GATEWAY_USER)

        def apply() -> None:
            Readiness(f"{node.name}: role {GATEWAY_USER} created by Citus (the group registered)", has_role,
                      120.0, interval=0.5, hint="see `streamctl logs coordinator` (Patroni registers each "
                      "group's leader)").wait()
            with self.ctx.pg_connect(node.name) as conn:
                self._authinfo(conn)

        return ConfigStep(node.name, "gateway credentials", pending, apply,
                          after=((coordinator.name, "gateway role"),))

    def _authinfo(self, conn: psycopg.Connection[Any]) -> None:
        """The coordinator connects to the workers as the gateway when it runs the gateway's queries."""
        catalog.store_authinfo(conn, GATEWAY_USER, pg_engine.authinfo(self._password()))
