"""The topology as the rest of streamctl imports it: the file's schema (`schema.py`: typed, frozen pydantic
sections, made of `fields.py`'s values, with the cluster-wide `settings.py`) and the nodes it describes
(`nodes.py`: roles expanded and resolved). Nothing is defined here."""

from __future__ import annotations

from streamctl.config.fields import BackendName, Constraint, Ident, Name, Port, SslMode, Strict, WalSize
from streamctl.config.nodes import (
    BACKED_UP_ROLES,
    CITUS_ROLES,
    Engine,
    Node,
    Role,
    node_backend,
    postgres_settings,
    resolve_nodes,
)
from streamctl.config.schema import (
    AnalyticsSpec,
    CitusSpec,
    CoordinatorSpec,
    ExternalSpec,
    FdwSpec,
    GatewaySpec,
    MetadataSpec,
    MongoSpec,
    MonitoringSpec,
    PrimarySpec,
    RedisSpec,
    ReplicaSpec,
    Server,
    Topology,
    WorkersSpec,
)
from streamctl.config.settings import (
    BackupSpec,
    LocalSpec,
    PlacementSpec,
    RepositorySpec,
    S3RepositorySpec,
    SecretsSpec,
    TlsCertSpec,
    TlsSpec,
    VerifySpec,
)

__all__ = [
    "BACKED_UP_ROLES", "CITUS_ROLES", "AnalyticsSpec", "BackendName", "BackupSpec", "CitusSpec", "Constraint",
    "CoordinatorSpec",
    "Engine", "ExternalSpec", "FdwSpec", "GatewaySpec", "Ident", "LocalSpec", "MetadataSpec", "MongoSpec",
    "MonitoringSpec", "Name", "Node", "PlacementSpec", "Port", "PrimarySpec", "RedisSpec", "ReplicaSpec",
    "RepositorySpec", "Role", "S3RepositorySpec", "SecretsSpec", "Server", "SslMode", "Strict", "TlsCertSpec",
    "TlsSpec",
    "Topology", "VerifySpec", "WalSize", "WorkersSpec", "node_backend", "postgres_settings", "resolve_nodes",
]
