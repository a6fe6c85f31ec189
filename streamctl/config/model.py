"""The topology as typed, frozen pydantic models, plus the resolved list of nodes it describes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
Ident = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
WalSize = Annotated[str, Field(pattern=r"^(-1|[0-9]{1,9}(kB|MB|GB|TB)?)$")]  # a PostgreSQL size setting


class Strict(BaseModel):
    """Base for every section: unknown keys are errors and values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


BackendName = Literal["auto", "docker", "local", "external", "swarm"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class ExternalSpec(Strict):
    """How to reach a node streamctl did not create; per node fields override the topology-wide ones.

    The password comes from the topology (write it as ${VAR}); it is never written to state files.
    """

    host: str | None = None  # default: the node's bind address (127.0.0.1)
    port: Port | None = None  # only in metadata.workers.nodes[]: that worker's port
    user: str | None = None  # default: pg_user
    password: str | None = None  # default: libpq's own lookup (PGPASSWORD, ~/.pgpass)
    sslmode: SslMode | None = None
    sslrootcert: str | None = None
    server_version: int | None = Field(None, ge=10, le=99)  # expected PostgreSQL major version
    citus_host: str | None = None  # the node's address as Citus and the other nodes know it (default: host)
    citus_port: Port | None = None  # likewise (default: port)

    def over(self, base: ExternalSpec) -> ExternalSpec:
        """These settings with `base` filling what they leave unset."""
        mine = self.model_dump(exclude_none=True)
        return base.model_copy(update=mine)


class CitusSpec(Strict):
    enabled: bool = True
    shard_count: int = Field(32, ge=1, le=4096)


class CoordinatorSpec(Strict):
    name: Name = "coordinator"
    image: str = "citusdata/citus:12.1"
    port: Port = 15432
    bind: str | None = None
    backend: BackendName | None = None  # default: the topology's backend
    external: ExternalSpec | None = None


class WorkersSpec(Strict):
    count: int = Field(2, ge=0, le=64)
    name_prefix: Name = "worker"
    image: str | None = None  # defaults to the coordinator's image
    port: Port = 15433  # worker i listens on port + i - 1
    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None
    nodes: tuple[ExternalSpec, ...] = ()  # per worker (in order): host, port, citus_host... overrides


class MetadataSpec(Strict):
    database: Ident = "metadata_db"
    citus: CitusSpec = CitusSpec()
    coordinator: CoordinatorSpec = CoordinatorSpec()
    workers: WorkersSpec = WorkersSpec()


class PrimarySpec(Strict):
    name: Name = "analytics-primary"
    image: str = "postgres:16"
    port: Port = 15442
    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None


class ReplicaSpec(Strict):
    name: Name
    port: Port
    image: str | None = None  # defaults to the primary's image
    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None


class AnalyticsSpec(Strict):
    enabled: bool = True
    database: Ident = "analytics_db"
    tables: tuple[Ident, ...] = ("users", "user_watch_history")
    primary: PrimarySpec | None = PrimarySpec()
    replicas: tuple[ReplicaSpec, ...] = (ReplicaSpec(name="analytics-replica-1", port=15443),)
    # WAL the primary keeps at most for a replica's slot: a replica gone or far behind cannot fill the disk
    # (past it, the slot is invalidated and that replica must be rebuilt); -1: unbounded.
    max_slot_wal_keep_size: WalSize = "4GB"

    @field_validator("max_slot_wal_keep_size", mode="before")
    @classmethod
    def _plain_number(cls, value: object) -> object:
        """A bare number (YAML reads it as an int) is megabytes, as PostgreSQL takes it."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class FdwSpec(Strict):
    enabled: bool = True
    source: Name = "analytics-primary"  # the analytics primary or one of its replicas
    schema_name: Ident = Field("analytics", alias="schema")
    tables: tuple[Ident, ...] | None = None  # defaults to analytics.tables


class MongoSpec(Strict):
    enabled: bool = True
    name: Name = "mongo"
    image: str = "mongo:7"
    port: Port = 27117
    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None
    database: Ident = "streaming"


class RedisSpec(Strict):
    enabled: bool = True
    name: Name = "redis"
    image: str = "redis:7"
    port: Port = 16379
    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None
    trending_ttl_days: int = Field(30, ge=1, le=3650)
    cache_ttl_seconds: int = Field(300, ge=1)


class GatewaySpec(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 3000
    replica_reads: bool = True  # analytics-only reads go to a replica when one exists
    tls: bool = False  # serve HTTPS with a certificate from the cluster CA (or tls.certificates.gateway)
    # Beyond loopback every route needs the ops token except these: exact paths, `{name}` for one path
    # segment, a trailing `*` for any rest (e.g. /api/v1/content/ids, /api/v1/content/{id}, /static/*).
    public_routes: tuple[str, ...] = ()
    metrics_interval: float = Field(5.0, ge=0.5, le=300)  # seconds between two background collections

    @field_validator("public_routes")
    @classmethod
    def _routes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for route in value:
            if not re.fullmatch(r"(/([A-Za-z0-9._~-]+|\{[a-zA-Z_]+\}))*(/\*|/)?", route) or not route:
                raise ValueError(f"{route!r} is not a route pattern: /literal/{{name}}/... with an optional "
                                 "trailing /* (e.g. /api/v1/content/{id})")
        return value


class MonitoringSpec(Strict):
    """A Prometheus server scraping the gateway's /metrics, with alert rules (local and Docker backends)."""

    prometheus: bool = False
    image: str = "prom/prometheus:v2.53.0"  # Docker backend: the official image (or one with its layout)
    port: Port = 19090
    bind: str | None = None  # default: the topology's bind address (127.0.0.1)
    scrape_interval: float = Field(15.0, ge=1, le=3600)  # seconds; also the rules' evaluation interval
    alert_for: float = Field(60.0, ge=0, le=86400)  # seconds a condition must last before its alert fires
    lag_bound_bytes: int = Field(64 * 1024 * 1024, ge=0)  # alert: a replica further behind than this
    lag_bound_seconds: float = Field(60.0, ge=0)
    skew_bound: float = Field(1.5, ge=1.0)  # alert: a distributed table's busiest node / mean node above this


class TlsCertSpec(Strict):
    """A certificate and its private key, as PEM files (paths relative to the topology file)."""

    cert: str
    key: str


class TlsSpec(Strict):
    """Verified TLS on every connection (default on); `tls: false` is the plain-text switch."""

    enabled: bool = True
    ca_cert: str | None = None  # bring your own CA (PEM); with ca_key streamctl signs node certificates with it
    ca_key: str | None = None
    certificates: dict[str, TlsCertSpec] = Field(default_factory=dict)  # node name (or `gateway`) -> own certificate


class SecretsSpec(Strict):
    """Optional fixed secrets (use ${VAR}); anything left empty is generated on first `up`."""

    postgres_password: str | None = None
    replication_password: str | None = None
    fdw_password: str | None = None
    gateway_password: str | None = None
    redis_password: str | None = None
    mongo_password: str | None = None


class LocalSpec(Strict):
    pg_bindir: str | None = None  # default: `pg_config --bindir`, else the directory of `initdb` on PATH
    run_as: str | None = None  # when root: the unprivileged user for PostgreSQL (default postgres/streamctl)


class VerifySpec(Strict):
    max_skew: float = Field(1.5, ge=1.0)  # largest shard / mean shard, per table
    max_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)
    max_lag_seconds: float = Field(30.0, ge=0)
    checksum_chunk_rows: int = Field(100_000, ge=100)


Constraint = Annotated[str, Field(min_length=1, max_length=300)]


class PlacementSpec(Strict):
    """Where nodes may run on a Swarm: Swarm constraint expressions per role and per node (both apply)."""

    roles: dict[str, tuple[Constraint, ...]] = {}
    nodes: dict[str, tuple[Constraint, ...]] = {}
    spread: bool = True  # place each new service on the matching host holding fewest of its role


class S3RepositorySpec(Strict):
    """An S3-compatible object store as the backup repository (keys as ${VAR}; never logged)."""

    endpoint: str = Field(min_length=1)  # host[:port], e.g. s3.eu-west-1.amazonaws.com or minio:9000
    bucket: str = Field(min_length=1)
    region: str = "us-east-1"
    key: str = Field(min_length=1)
    key_secret: str = Field(min_length=1)
    prefix: str = Field("/streamctl", pattern=r"^/")  # path inside the bucket
    uri_style: Literal["host", "path"] = "host"
    verify_tls: bool = True


class RepositorySpec(Strict):
    """Where backups go: a directory on the machine streamctl manages, or an S3-compatible store."""

    path: str | None = Field(None, min_length=1)  # relative to the topology file
    s3: S3RepositorySpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RepositorySpec:
        if (self.path is None) == (self.s3 is None):
            raise ValueError("give exactly one of `path` (a directory) or `s3` (an S3-compatible store)")
        return self


class BackupSpec(Strict):
    """Continuous WAL archiving and base backups with pgBackRest (on when the section is present)."""

    enabled: bool = True
    repository: RepositorySpec
    retention_full: int = Field(2, ge=1, le=999)  # full backups kept (their WAL too)
    retention_diff: int | None = Field(None, ge=1, le=999)  # differential backups kept (default: all)
    compression: Literal["none", "lz4", "zst", "gz", "bz2"] = "lz4"
    parallelism: int = Field(2, ge=1, le=64)  # processes per node's backup and restore
    archive_timeout: int = Field(60, ge=1, le=86400)  # seconds: WAL is switched and archived at least this often


class Topology(Strict):
    version: Literal[1] = 1
    cluster: Name = "streamplat"
    backend: BackendName = "auto"
    bind: str = "127.0.0.1"
    state_dir: str = ".streamctl"
    pg_user: Ident = "streamctl"
    metadata: MetadataSpec = MetadataSpec()
    analytics: AnalyticsSpec = AnalyticsSpec()
    fdw: FdwSpec = FdwSpec()
    mongo: MongoSpec = MongoSpec()
    redis: RedisSpec = RedisSpec()
    gateway: GatewaySpec = GatewaySpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    secrets: SecretsSpec = SecretsSpec()
    external: ExternalSpec = ExternalSpec()  # defaults for every external node
    local: LocalSpec = LocalSpec()
    verify: VerifySpec = VerifySpec()
    placement: PlacementSpec = PlacementSpec()
    tls: TlsSpec = TlsSpec()
    backup: BackupSpec | None = None  # off unless the section is present

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_switch(cls, value: object) -> object:
        """`tls: false` / `tls: true` are shorthands for `tls: {enabled: ...}`."""
        return {"enabled": value} if isinstance(value, bool) else value

    @property
    def citus(self) -> bool:
        return self.metadata.citus.enabled

    def runs_citus(self, role: Role) -> bool:
        """Whether a node of this role runs Citus: the coordinator and the workers, when Citus is on."""
        return self.citus and role in CITUS_ROLES

    @property
    def backup_on(self) -> bool:
        return self.backup is not None and self.backup.enabled

    @property
    def fdw_tables(self) -> tuple[str, ...]:
        return self.fdw.tables if self.fdw.tables is not None else self.analytics.tables

    def nodes(self) -> list[Node]:
        return resolve_nodes(self)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes() if n.name == name), None)

    def nodes_by_role(self, role: Role) -> list[Node]:
        return [n for n in self.nodes() if n.role == role]


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
    return tuple(sorted(settings.items()))


def _spec_of(t: Topology, node: Node) -> tuple[BackendName | None, ExternalSpec | None]:
    """The per-node backend and external settings declared for `node` (a worker: its section's)."""
    md, a = t.metadata, t.analytics
    spec: CoordinatorSpec | WorkersSpec | PrimarySpec | ReplicaSpec | MongoSpec | RedisSpec | None = {
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
    backend, own = _spec_of(t, node)
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
