"""The Citus layer over the metadata database, beside a null layer for plain PostgreSQL (as Patroni does).

Every Citus node gets the extension and the credentials for node-to-node connections; the coordinator
registers itself and the workers by their network names, then distributes the content tables by
content_id (colocated) and makes genres/people reference tables.
"""

from __future__ import annotations

from typing import Protocol

from streamctl.citus import catalog
from streamctl.citus.catalog import Address
from streamctl.citus.nodes import register_workers, registration_pending, worker_address
from streamctl.config.members import citus_groups
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.errors import StepError
from streamctl.names import DISTRIBUTED_TABLES, DISTRIBUTION_COLUMN, REFERENCE_TABLES
from streamctl.readiness import Readiness
from streamctl.steps import ConfigStep

WORKERS_STEP = "citus workers"
DISTRIBUTION_STEP = "citus distribution"


class MetadataLayer(Protocol):
    """What the metadata database gets on top of plain PostgreSQL: steps per node, then distribution."""

    def node_steps(self) -> list[ConfigStep]: ...

    def distribution_steps(self) -> list[ConfigStep]: ...


class NullCitusLayer:
    """Citus off: the metadata database is plain PostgreSQL and the tables stay local."""

    def node_steps(self) -> list[ConfigStep]:
        return []

    def distribution_steps(self) -> list[ConfigStep]:
        return []


class CitusLayer:
    """Citus on: extension and credentials on every node, workers registered, content tables distributed."""

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        coordinator = ctx.first(Role.COORDINATOR)
        assert coordinator is not None
        self.coordinator: Node = coordinator
        self.workers = ctx.topology.nodes_by_role(Role.WORKER)
        self.groups = citus_groups(ctx.topology)

    # -- every node: extension + node-to-node credentials -------------------------------------------
    def node_steps(self) -> list[ConfigStep]:
        steps = [self._extension_step(n) for n in (self.coordinator, *self.workers)]
        if self.groups:  # under HA, Patroni registers the coordinator and each group's leader itself
            return [*steps, self._leaders_step()]
        steps.append(self._coordinator_step())
        steps.append(self._workers_step())
        return steps

    def _leaders_step(self) -> ConfigStep:
        """Under HA: every group led in pg_dist_node, as Patroni registers it (streamctl only waits)."""
        return ConfigStep(self.coordinator.name, WORKERS_STEP, self._unled, self.wait_groups_led)

    def _unled(self) -> list[str]:
        with self.ctx.pg_connect(self.coordinator.name) as conn:
            led = catalog.group_leaders(conn)
        return [f"{g.node.name} (group {g.number}) registered by Patroni" for g in self.groups
                if g.number not in led]

    def wait_groups_led(self, timeout: float = 120.0) -> None:
        """Under HA: wait until Patroni has registered every group's leader in pg_dist_node (a new group's
        too: the coordinator's Patroni adds the groups it finds led in the DCS)."""
        Readiness("every Citus group led in pg_dist_node", lambda: not self._unled(), timeout, interval=0.5,
                  hint="see `streamctl logs coordinator` (Patroni's log)").wait()

    def _extension_step(self, node: Node) -> ConfigStep:
        def pending() -> list[str]:
            user, authinfo = self._credentials(node)
            out = []
            with self.ctx.pg_connect(node.name) as conn:
                if not catalog.extension_created(conn):
                    return ["create extension citus"] + (["store node-to-node credentials"] if authinfo else [])
                if authinfo and not catalog.authinfo_stored(conn, user, authinfo):
                    out.append("store node-to-node credentials")
            return out

        def apply() -> None:
            user, authinfo = self._credentials(node)
            with self.ctx.pg_connect(node.name) as conn:
                catalog.create_extension(conn)
                if authinfo is not None:
                    catalog.store_authinfo(conn, user, authinfo)

        return ConfigStep(node.name, "citus extension", pending, apply, after=())

    def _credentials(self, node: Node) -> tuple[str, str | None]:
        """The role Citus connects between nodes as, and its authinfo; an external node without a password
        in the topology authenticates however its administrator set up (.pgpass, certificates...)."""
        if node.external is not None:
            user = node.external.user or self.ctx.topology.pg_user
            return user, pg_engine.authinfo(node.external.password) if node.external.password else None
        return self.ctx.topology.pg_user, pg_engine.authinfo(self.ctx.secrets["postgres_password"])

    def _coordinator_step(self) -> ConfigStep:
        host, port = address = worker_address(self.ctx, self.coordinator)

        def pending() -> list[str]:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                found = catalog.coordinator_address(conn)
            return [] if found == address else [f"coordinator host {host}:{port}"]

        def apply() -> None:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                catalog.set_coordinator_host(conn, address)

        return ConfigStep(self.coordinator.name, "citus coordinator", pending, apply)

    def _workers_step(self) -> ConfigStep:
        wanted = {worker_address(self.ctx, w): w.name for w in self.workers}

        def pending() -> list[str]:  # secondaries: the standbys Patroni registered, left when ha is turned off
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                return [*(f"unregister {h}:{p} (a standby under ha)" for h, p in catalog.secondaries(conn)),
                        *registration_pending(conn, wanted)]

        def apply() -> None:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                for address in catalog.secondaries(conn):
                    catalog.remove_node(conn, address)
                register_workers(conn, list(wanted))
            self.wait_workers_active(list(wanted))

        return ConfigStep(self.coordinator.name, WORKERS_STEP, pending, apply)

    def wait_workers_active(self, addresses: list[Address], timeout: float = 120.0) -> None:
        """Ready when the coordinator lists every wanted worker as active."""

        def probe() -> bool:
            with self.ctx.pg_connect(self.coordinator.name) as conn:
                registered = catalog.primary_workers(conn)
            return all(registered.get(a) for a in addresses)

        Readiness("citus workers active", probe, timeout, interval=0.5,
                  hint="check `streamctl logs worker-1` and the coordinator's log").wait()

    # -- the coordinator: distribution ------------------------------------------------------------
    def distribution_steps(self) -> list[ConfigStep]:
        shard_count = self.ctx.topology.metadata.citus.shard_count
        name = self.coordinator.name

        def pending() -> list[str]:
            with self.ctx.pg_connect(name) as conn:
                parts = catalog.partitioning(conn)
            out = [f"reference table {t}" for t in REFERENCE_TABLES if t not in parts]
            out += [f"distribute {t} by {DISTRIBUTION_COLUMN}" for t in DISTRIBUTED_TABLES if t not in parts]
            wrong = [t for t in DISTRIBUTED_TABLES if parts.get(t) not in (None, "h")]
            if wrong:
                raise StepError(f"tables {', '.join(wrong)} exist in Citus but are not hash-distributed",
                                hint="undistribute them (undistribute_table) and run `streamctl up` again")
            return out

        def apply() -> None:
            with self.ctx.pg_connect(name) as conn:
                parts = catalog.partitioning(conn)
                for table in REFERENCE_TABLES:
                    if table not in parts:
                        catalog.create_reference_table(conn, table)
                catalog.set_shard_count(conn, shard_count)
                anchor = DISTRIBUTED_TABLES[0]
                for table in DISTRIBUTED_TABLES:
                    if table in parts:
                        continue
                    colocate = "default" if table == anchor else anchor
                    catalog.create_distributed_table(conn, table, DISTRIBUTION_COLUMN, colocate)

        return [ConfigStep(name, DISTRIBUTION_STEP, pending, apply)]


def citus_layer(ctx: ClusterContext) -> MetadataLayer:
    """The layer the topology asks for: Citus, or its do-nothing twin for plain PostgreSQL."""
    return CitusLayer(ctx) if ctx.topology.citus else NullCitusLayer()
