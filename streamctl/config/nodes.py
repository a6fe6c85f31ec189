"""The nodes a topology describes: each role expanded (workers from their count, replicas from their list),
with its backend, image, address and PostgreSQL settings resolved, and external nodes with their
effective connection settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from streamctl.config.fields import BackendName
from streamctl.config.schema import ExternalSpec, Server, Topology


class Role(StrEnum):
    COORDINATOR = "coordinator"
    WORKER = "worker"
    ANALYTICS_PRIMARY = "analytics_primary"
    ANALYTICS_REPLICA = "analytics_replica"
    MONGO = "mongo"
    REDIS = "redis"


class Engine(StrEnum):
    POSTGRES = "postgres"
    REDIS = "redis"
    MONGO = "mongo"


@dataclass(frozen=True)
class Node:
    """One process or container the topology asks for, with everything a backend needs to run it."""

    name: str
    role: Role
    engine: Engine
    image: str
    bind: str
    port: int
    yaml_path: str  # where it is declared, for messages
    database: str | None = None
    settings: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # postgres -c key=value

    backend: str | None = None  # per-node backend; None: the topology's
    external: ExternalSpec | None = None  # effective connection settings when the node is external

    @property
    def is_external(self) -> bool:
        return self.external is not None

    @property
    def citus_address(self) -> tuple[str, int] | None:
        """An external node's address as Citus and the other nodes know it; None for provisioned nodes."""
        if self.external is None:
            return None
        return self.external.citus_host or self.host, self.external.citus_port or self.port

    @property
    def is_postgres(self) -> bool:
        return self.engine is Engine.POSTGRES

    @property
    def host(self) -> str:
        """Where the CLI reaches the node: the bind address, or loopback when bound to all."""
        return "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind


CITUS_ROLES = (Role.COORDINATOR, Role.WORKER)
BACKED_UP_ROLES = (Role.COORDINATOR, Role.WORKER, Role.ANALYTICS_PRIMARY)  # replicas are rebuilt from these


def postgres_settings(topology: Topology, role: Role) -> tuple[tuple[str, str], ...]:
    """Server settings per role: logical WAL everywhere (replication, and Citus shard moves)."""
    settings: dict[str, str] = {
        "wal_level": "logical",
        "max_wal_senders": "20",
        "max_replication_slots": "20",
        "max_logical_replication_workers": "8",
        "max_worker_processes": "16",
        "max_connections": "200",
        "password_encryption": "scram-sha-256",
    }
    if role is Role.ANALYTICS_PRIMARY:
        settings["max_slot_wal_keep_size"] = topology.analytics.max_slot_wal_keep_size
    if topology.backup_on and role in BACKED_UP_ROLES:
        # archive_command is set by `up` once the node's stanza exists (streamctl.backup): until then
        # WAL is kept, not pushed into a repository that does not know the node yet.
        settings["archive_mode"] = "on"
        settings["archive_timeout"] = str(topology.backup.archive_timeout)  # type: ignore[union-attr]
    if topology.runs_citus(role):
        settings["shared_preload_libraries"] = "citus"
        settings["citus.enable_statistics_collection"] = "off"  # never phone home
        settings["citus.stat_tenants_track"] = "all"  # per-title query counts for `shards hot`
        # Each logical shard move starts a subscription on its target; PostgreSQL 15's launcher starts at
        # most one apply worker per wal_retrieve_retry_interval (5 s by default), so every move after the
        # first waited about 5 s for its worker (a move itself takes about 1 s): 1 s keeps that wait short.
        settings["wal_retrieve_retry_interval"] = "1s"
    return tuple(sorted(settings.items()))


def spec_of(t: Topology, node: Node) -> tuple[BackendName | None, ExternalSpec | None]:
    """The per-node backend and external settings declared for `node` (a worker: its section's)."""
    md, a = t.metadata, t.analytics
    spec: Server | None = {
        Role.COORDINATOR: md.coordinator, Role.WORKER: md.workers, Role.ANALYTICS_PRIMARY: a.primary,
        Role.MONGO: t.mongo, Role.REDIS: t.redis}.get(node.role)
    if node.role is Role.ANALYTICS_REPLICA:
        spec = next(r for r in a.replicas if r.name == node.name)
    assert spec is not None
    return spec.backend, spec.external


def node_backend(t: Topology, node: Node) -> str:
    """The backend that runs `node`: its own `backend`, else the topology's."""
    return node.backend or t.backend


def _externalize(t: Topology, node: Node, index: int) -> Node:
    """Attach the per-node backend and, for an external node, its effective connection settings."""
    backend, own = spec_of(t, node)
    if (backend or t.backend) != "external":
        return replace(node, backend=backend)
    ext = (own or ExternalSpec()).over(t.external)
    if node.role is Role.WORKER and index < len(t.metadata.workers.nodes):
        ext = t.metadata.workers.nodes[index].over(ext)
    host = ext.host or node.bind
    port = ext.port or node.port
    return replace(node, backend="external", external=ext, bind=host, port=port, image="")


def resolve_nodes(t: Topology) -> list[Node]:
    """Expand the topology into its enabled nodes, in a stable order, with per-node backends resolved."""
    nodes = _provisioned_nodes(t)
    workers = [n for n in nodes if n.role is Role.WORKER]
    return [_externalize(t, n, workers.index(n) if n.role is Role.WORKER else 0) for n in nodes]


def _provisioned_nodes(t: Topology) -> list[Node]:
    """Expand the topology into its enabled nodes, in a stable order (the documented node names)."""
    nodes: list[Node] = []
    md = t.metadata
    c = md.coordinator
    coord_settings = postgres_settings(t, Role.COORDINATOR)
    nodes.append(Node(c.name, Role.COORDINATOR, Engine.POSTGRES, c.image, c.bind or t.bind, c.port,
                      "metadata.coordinator", md.database, coord_settings))
    if t.citus:
        w = md.workers
        for i in range(1, w.count + 1):
            nodes.append(Node(f"{w.name_prefix}-{i}", Role.WORKER, Engine.POSTGRES, w.image or c.image,
                              w.bind or t.bind, w.port + i - 1, f"metadata.workers[{i - 1}]", md.database,
                              postgres_settings(t, Role.WORKER)))
    a = t.analytics
    if a.enabled and a.primary is not None:
        p = a.primary
        nodes.append(Node(p.name, Role.ANALYTICS_PRIMARY, Engine.POSTGRES, p.image, p.bind or t.bind, p.port,
                          "analytics.primary", a.database, postgres_settings(t, Role.ANALYTICS_PRIMARY)))
        for i, r in enumerate(a.replicas):
            nodes.append(Node(r.name, Role.ANALYTICS_REPLICA, Engine.POSTGRES, r.image or p.image,
                              r.bind or t.bind, r.port, f"analytics.replicas[{i}]", a.database,
                              postgres_settings(t, Role.ANALYTICS_REPLICA)))
    if t.mongo.enabled:
        m = t.mongo
        nodes.append(Node(m.name, Role.MONGO, Engine.MONGO, m.image, m.bind or t.bind, m.port, "mongo",
                          m.database))
    if t.redis.enabled:
        r2 = t.redis
        nodes.append(Node(r2.name, Role.REDIS, Engine.REDIS, r2.image, r2.bind or t.bind, r2.port, "redis"))
    return nodes


def worker_index(node: Node) -> int | None:
    """A Citus worker's index: workers are not written one by one, but derived from metadata.workers."""
    prefix = "metadata.workers["
    return int(node.yaml_path[len(prefix):-1]) if node.yaml_path.startswith(prefix) else None


def declared(t: Topology, node: Node, key: str) -> str:
    """The key of the file that sets this node's `key` (a worker's port: metadata.workers.port, unless
    metadata.workers.nodes[i].port sets it)."""
    i = worker_index(node)
    if i is None:
        return f"{node.yaml_path}.{key}"
    w = t.metadata.workers
    if key == "port" and i < len(w.nodes) and w.nodes[i].port is not None:
        return f"metadata.workers.nodes[{i}].port"
    return {"name": "metadata.workers.name_prefix"}.get(key, f"metadata.workers.{key}")


def owner(t: Topology, node: Node, key: str) -> str:
    """Who holds a name or port, for messages: `redis`, or `worker-2 (metadata.workers.port + 1)`."""
    i = worker_index(node)
    if i is None:
        return node.yaml_path
    where = declared(t, node, key)
    offset = f" + {i}" if key == "port" and where == "metadata.workers.port" and i else ""
    return f"{node.name} ({where}{offset})"
