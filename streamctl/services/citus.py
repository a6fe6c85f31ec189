"""The Citus layer over the metadata database, beside a null layer for plain PostgreSQL (as Patroni does).

Every Citus node gets the extension and the credentials for node-to-node connections; the coordinator
registers itself and the workers by their network names, then distributes the content tables by
content_id (colocated) and makes genres/people reference tables.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.errors import StepError
from streamctl.names import DISTRIBUTED_TABLES, DISTRIBUTION_COLUMN, REFERENCE_TABLES
from streamctl.readiness import Readiness
from streamctl.services.base import ConfigStep


class NullCitusLayer:
    """Citus off: the metadata database is plain PostgreSQL and the tables stay local."""

    def node_steps(self) -> list[ConfigStep]:
        return []

    def distribution_steps(self) -> list[ConfigStep]:
        return []


class CitusLayer:
    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        coordinator = ctx.first(Role.COORDINATOR)
        assert coordinator is not None
        self.coordinator: Node = coordinator
        self.workers = ctx.topology.nodes_by_role(Role.WORKER)

    # -- every node: extension + node-to-node credentials -------------------------------------------
    def node_steps(self) -> list[ConfigStep]:
        steps = [self._extension_step(n) for n in (self.coordinator, *self.workers)]
        steps.append(self._coordinator_step())
        steps.append(self._workers_step())
        return steps

    def _extension_step(self, node: Node) -> ConfigStep:
        def pending() -> list[str]:
            user, authinfo = self._credentials(node)
            out = []
            with self.ctx.pg_connect(node.name) as conn:
                if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
                    return ["create extension citus"] + (["store node-to-node credentials"] if authinfo else [])
                if authinfo and not conn.execute("SELECT 1 FROM pg_dist_authinfo WHERE nodeid = 0 AND "
                                                 "rolename = %s AND authinfo = %s", (user, authinfo)).fetchone():
                    out.append("store node-to-node credentials")
            return out

        def apply() -> None:
            user, authinfo = self._credentials(node)
            with self.ctx.pg_connect(node.name) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
                if authinfo is None:
                    return
                # Nodes authenticate to each other with scram; pg_dist_authinfo gives Citus the password.
                conn.execute("DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = %s", (user,))
                conn.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)",
                             (user, authinfo))

        return ConfigStep(node.name, "citus extension", pending, apply)

    def _credentials(self, node: Node) -> tuple[str, str | None]:
        """The role Citus connects between nodes as, and its authinfo; an external node without a password
        in the topology authenticates however its administrator set up (.pgpass, certificates...)."""
        if node.external is not None:
            user = node.external.user or self.ctx.topology.pg_user
            return user, f"password={node.external.password}" if node.external.password else None
        return self.ctx.topology.pg_user, f"password={self.ctx.secrets['postgres_password']}"

    def _address(self, node: Node) -> tuple[str, int]:
        ep = self.ctx.endpoint(node.name)
        return ep.internal_host, ep.internal_port

    def _coordinator_step(self) -> ConfigStep:
        host, port = self._address(self.coordinator)

        def pending() -> list[str]:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                row = conn.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0").fetchone()
            return [] if row and (row[0], row[1]) == (host, port) else [f"coordinator host {host}:{port}"]

        def apply() -> None:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (host, port))

        return ConfigStep(self.coordinator.name, "citus coordinator", pending, apply)

    def _registered(self, conn: psycopg.Connection[Any]) -> dict[tuple[str, int], bool]:
        rows = conn.execute("SELECT nodename, nodeport, isactive FROM pg_dist_node "
                            "WHERE groupid <> 0 AND noderole = 'primary'").fetchall()
        return {(r[0], int(r[1])): bool(r[2]) for r in rows}

    def _workers_step(self) -> ConfigStep:
        wanted = {self._address(w): w.name for w in self.workers}

        def pending() -> list[str]:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                registered = self._registered(conn)
            out = []
            for addr, name in wanted.items():
                if addr not in registered:
                    out.append(f"register {name} ({addr[0]}:{addr[1]})")
                elif not registered[addr]:
                    out.append(f"activate {name}")
            return out

        def apply() -> None:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                registered = self._registered(conn)
                for (host, port), _name in wanted.items():
                    if (host, port) not in registered:
                        conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
                    elif not registered[(host, port)]:
                        conn.execute("SELECT citus_activate_node(%s, %s)", (host, port))
            self.wait_workers_active(list(wanted))

        return ConfigStep(self.coordinator.name, "citus workers", pending, apply)

    def wait_workers_active(self, addresses: list[tuple[str, int]], timeout: float = 120.0) -> None:
        """Ready when the coordinator lists every wanted worker as active."""

        def probe() -> bool:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                registered = self._registered(conn)
            return all(registered.get(a) for a in addresses)

        Readiness("citus workers active", probe, timeout, interval=0.5,
                  hint="check `streamctl logs worker-1` and the coordinator's log").wait()

    # -- the coordinator: distribution ------------------------------------------------------------
    def distribution_steps(self) -> list[ConfigStep]:
        shard_count = self.ctx.topology.metadata.citus.shard_count
        name = self.coordinator.name

        def partitioning(conn: psycopg.Connection[Any]) -> dict[str, str]:
            rows = conn.execute("SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition")
            return {str(r[0]): str(r[1]) for r in rows.fetchall()}

        def pending() -> list[str]:
            with self.ctx.pg_connect(name) as conn:
                parts = partitioning(conn)
            out = [f"reference table {t}" for t in REFERENCE_TABLES if t not in parts]
            out += [f"distribute {t} by {DISTRIBUTION_COLUMN}" for t in DISTRIBUTED_TABLES if t not in parts]
            wrong = [t for t in DISTRIBUTED_TABLES if parts.get(t) not in (None, "h")]
            if wrong:
                raise StepError(f"tables {', '.join(wrong)} exist in Citus but are not hash-distributed",
                                hint="undistribute them (undistribute_table) and run `streamctl up` again")
            return out

        def apply() -> None:
            with self.ctx.pg_connect(name) as conn:
                parts = partitioning(conn)
                for table in REFERENCE_TABLES:
                    if table not in parts:
                        conn.execute("SELECT create_reference_table(%s)", (table,))
                conn.execute(sql.SQL("SET citus.shard_count = {}").format(sql.Literal(shard_count)))
                anchor = DISTRIBUTED_TABLES[0]
                for table in DISTRIBUTED_TABLES:
                    if table in parts:
                        continue
                    colocate = "default" if table == anchor else anchor
                    conn.execute("SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                                 (table, DISTRIBUTION_COLUMN, colocate))

        return [ConfigStep(name, "citus distribution", pending, apply)]


def citus_layer(ctx: ClusterContext) -> CitusLayer | NullCitusLayer:
    return CitusLayer(ctx) if ctx.topology.citus else NullCitusLayer()
