"""The topology file's schema: the servers' sections and the topology itself, as typed, frozen pydantic
models (the values they are made of: `fields.py`; the cluster-wide settings: `settings.py`). What nodes
it describes is worked out apart, in `nodes.py`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from streamctl.config.fields import BackendName, Ident, Name, Port, SslMode, Strict, WalSize
from streamctl.config.settings import (
    BackupSpec,
    HaSpec,
    LocalSpec,
    PlacementSpec,
    SecretsSpec,
    TlsSpec,
    VerifySpec,
)

if TYPE_CHECKING:
    from streamctl.config.nodes import Node, Role


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


class Server(Strict):
    """Where a server runs: the address its port binds (default: the topology's), its backend (default:
    the topology's), or how to reach it when it is external."""

    bind: str | None = None
    backend: BackendName | None = None
    external: ExternalSpec | None = None


class CitusSpec(Strict):
    enabled: bool = True
    shard_count: int = Field(32, ge=1, le=4096)


class CoordinatorSpec(Server):
    name: Name = "coordinator"
    image: str = "citusdata/citus:12.1"
    port: Port = 15432


class WorkersSpec(Server):
    count: int = Field(2, ge=0, le=64)
    name_prefix: Name = "worker"
    image: str | None = None  # defaults to the coordinator's image
    port: Port = 15433  # worker i listens on port + i - 1
    nodes: tuple[ExternalSpec, ...] = ()  # per worker (in order): host, port, citus_host... overrides


class MetadataSpec(Strict):
    database: Ident = "metadata_db"
    citus: CitusSpec = CitusSpec()
    coordinator: CoordinatorSpec = CoordinatorSpec()
    workers: WorkersSpec = WorkersSpec()


class PrimarySpec(Server):
    name: Name = "analytics-primary"
    image: str = "postgres:16"
    port: Port = 15442


class ReplicaSpec(Server):
    name: Name
    port: Port
    image: str | None = None  # defaults to the primary's image


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


class MongoSpec(Server):
    enabled: bool = True
    name: Name = "mongo"
    image: str = "mongo:7"
    port: Port = 27117
    database: Ident = "streaming"


class RedisSpec(Server):
    enabled: bool = True
    name: Name = "redis"
    image: str = "redis:7"
    port: Port = 16379
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
    ha: HaSpec | None = None  # off unless the section is present

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
        from streamctl.config.nodes import CITUS_ROLES

        return self.citus and role in CITUS_ROLES

    @property
    def ha_on(self) -> bool:
        return self.ha is not None and self.ha.enabled

    @property
    def backup_on(self) -> bool:
        return self.backup is not None and self.backup.enabled

    @property
    def fdw_tables(self) -> tuple[str, ...]:
        return self.fdw.tables if self.fdw.tables is not None else self.analytics.tables

    def nodes(self) -> list[Node]:
        from streamctl.config.nodes import resolve_nodes

        return resolve_nodes(self)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes() if n.name == name), None)

    def nodes_by_role(self, role: Role) -> list[Node]:
        return [n for n in self.nodes() if n.role == role]
