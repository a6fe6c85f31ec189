"""postgres_fdw on the coordinator: the analytics tables as foreign tables in their own schema.

The remote side gets a read-only role that may only SELECT the imported tables. With Citus on, Citus
plans a join between such a foreign table and a distributed table by pulling the (filtered) foreign rows
into an intermediate result (local table joins), so one query spans both worlds.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from streamctl.backends.base import Backend
from streamctl.config.members import peer_addresses
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.names import FDW_SERVER, FDW_USER
from streamctl.services.permanent_slots import replayed
from streamctl.services.postgres import HBA_STEP, ensure_read_only_role, grant_read, reader_pending
from streamctl.steps import ConfigStep

READER_STEP = "fdw reader role"


def fdw_enabled(ctx: ClusterContext) -> bool:
    """The FDW needs both ends: a coordinator and an analytics primary."""
    return (ctx.topology.fdw.enabled and ctx.first(Role.COORDINATOR) is not None
            and ctx.first(Role.ANALYTICS_PRIMARY) is not None)


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: the reader role on the source node, then server, mapping and foreign tables."""
    if not fdw_enabled(ctx):
        return []
    svc = FdwService(ctx)
    return [replayed(ctx, svc.reader_role_step()), svc.coordinator_step()]


class FdwService:
    user = FDW_USER

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        t = ctx.topology
        coordinator = ctx.first(Role.COORDINATOR)
        source = t.node(t.fdw.source)
        assert coordinator is not None and source is not None
        self.coordinator: Node = coordinator
        self.source: Node = source
        self.tables = t.fdw_tables
        self.schema = t.fdw.schema_name
        self.database = t.analytics.database

    # -- the remote (analytics) side --------------------------------------------------------------
    def reader_role_step(self) -> ConfigStep:
        """Roles are not replicated, so the reader is made on whichever node the FDW reads from."""

        def pending() -> list[str]:
            with self.ctx.pg_connect(self.source.name) as conn:
                return reader_pending(conn, FDW_USER, self.tables, "read-only role")

        def apply() -> None:
            with self.ctx.pg_connect(self.source.name) as conn:
                ensure_read_only_role(conn, FDW_USER, self.ctx.secrets["fdw_password"])
                grant_read(conn, FDW_USER, self.database, "public", self.tables)

        return ConfigStep(self.source.name, READER_STEP, pending, apply, after=())

    # -- the coordinator side ---------------------------------------------------------------------
    def _server_options(self) -> dict[str, str]:
        ep = self.ctx.endpoint(self.source.name)
        # Under HA, every member and target_session_attrs=primary: the FDW follows the leader across a failover.
        members = peer_addresses(self.ctx.topology, self.source.name, ep.internal_host, ep.internal_port)
        where = pg_engine.leader_params(members) if members else {"host": ep.internal_host,
                                                                  "port": str(ep.internal_port)}
        # connect_timeout: a query through the FDW to a source whose host froze fails in seconds, not hours.
        return {**where, "dbname": self.database,
                "fetch_size": "10000", "connect_timeout": "10",
                **self.ctx.pg_ssl(client=self.coordinator.name, target=self.source.name)}

    def _local_user(self) -> str:
        """The coordinator role the mapping is for: the one streamctl connects as there."""
        ext = self.coordinator.external
        return (ext.user if ext is not None and ext.user else None) or self.ctx.topology.pg_user

    def _mapping_options(self) -> dict[str, str]:
        return {"user": FDW_USER, "password": self.ctx.secrets["fdw_password"]}

    def _state(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw'").fetchone() is not None
        srv = conn.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", (FDW_SERVER,)).fetchone()
        um = conn.execute("SELECT umoptions FROM pg_user_mappings WHERE srvname = %s AND usename = %s",
                          (FDW_SERVER, self._local_user())).fetchone()
        tables = conn.execute("SELECT c.relname FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
                              (self.schema,)).fetchall()
        return {"extension": ext, "server": _options(srv[0]) if srv else None,
                "mapping": _options(um[0]) if um else None, "tables": {r[0] for r in tables}}

    def coordinator_step(self) -> ConfigStep:
        def pending() -> list[str]:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                st = self._state(conn)
            out = []
            if not st["extension"]:
                out.append("create extension postgres_fdw")
            if st["server"] is None:
                out.append(f"create server {FDW_SERVER} -> {self.source.name}")
            elif st["server"] != self._server_options():
                out.append(f"point server {FDW_SERVER} at {self.source.name}")
            if st["mapping"] != self._mapping_options():
                out.append(f"user mapping as {FDW_USER}")
            missing = [t for t in self.tables if t not in st["tables"]]
            if missing:
                out.append(f"import {', '.join(missing)} into schema {self.schema}")
            return out

        def apply() -> None:
            srv = sql.Identifier(FDW_SERVER)
            user = sql.Identifier(self._local_user())
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
                st = self._state(conn)
                if st["server"] is None:
                    conn.execute(sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})").format(
                        srv, _render_options(self._server_options())))
                elif st["server"] != self._server_options():
                    conn.execute(sql.SQL("ALTER SERVER {} OPTIONS ({})").format(
                        srv, _render_alter(st["server"], self._server_options())))
                if st["mapping"] is None:
                    conn.execute(sql.SQL("CREATE USER MAPPING FOR {} SERVER {} OPTIONS ({})").format(
                        user, srv, _render_options(self._mapping_options())))
                elif st["mapping"] != self._mapping_options():
                    conn.execute(sql.SQL("ALTER USER MAPPING FOR {} SERVER {} OPTIONS ({})").format(
                        user, srv, _render_alter(st["mapping"], self._mapping_options())))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                missing = [t for t in self.tables if t not in st["tables"]]
                if missing:
                    conn.execute(sql.SQL("IMPORT FOREIGN SCHEMA public LIMIT TO ({}) FROM SERVER {} INTO {}").format(
                        sql.SQL(", ").join(sql.Identifier(t) for t in missing), srv, sql.Identifier(self.schema)))
                # A round trip proves the mapping, the access rules and the remote grants at once.
                conn.execute(sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                    sql.Identifier(self.schema), sql.Identifier(self.tables[0])))

        # The coordinator's side needs of the source: its tables (to import), its reader role and pg_hba.
        src = self.source.name
        return ConfigStep(self.coordinator.name, "fdw", pending, apply,
                          after=((src, READER_STEP), (src, HBA_STEP), (src, "schema analytics")))


def _options(raw: list[str] | None) -> dict[str, str]:
    return dict(o.split("=", 1) for o in raw or [])


def _render_options(opts: dict[str, str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Composed([sql.Identifier(k), sql.SQL(" "), sql.Literal(v)])
                              for k, v in opts.items())


def _render_alter(current: dict[str, str], wanted: dict[str, str]) -> sql.Composed:
    parts = [sql.Composed([sql.SQL("SET " if k in current else "ADD "), sql.Identifier(k), sql.SQL(" "),
                           sql.Literal(v)]) for k, v in wanted.items() if current.get(k) != v]
    parts += [sql.Composed([sql.SQL("DROP "), sql.Identifier(k)]) for k in current if k not in wanted]
    return sql.SQL(", ").join(parts)
