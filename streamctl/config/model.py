"""The topology as the rest of streamctl imports it: the file's schema (`schema.py`: typed, frozen pydantic
sections) and the nodes it describes (`nodes.py`: roles expanded and resolved). Nothing is defined here."""

from __future__ import annotations

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
    BackendName,
    BackupSpec,
    CitusSpec,
    Constraint,
    CoordinatorSpec,
    ExternalSpec,
    FdwSpec,
    GatewaySpec,
    Ident,
    LocalSpec,
    MetadataSpec,
    MongoSpec,
    MonitoringSpec,
    Name,
    PlacementSpec,
    Port,
    PrimarySpec,
    RedisSpec,
    ReplicaSpec,
    RepositorySpec,
    S3RepositorySpec,
    SecretsSpec,
    SslMode,
    Strict,
    TlsCertSpec,
    TlsSpec,
    Topology,
    VerifySpec,
    WalSize,
    WorkersSpec,
)

__all__ = [
    "BACKED_UP_ROLES", "CITUS_ROLES", "AnalyticsSpec", "BackendName", "BackupSpec", "CitusSpec", "Constraint",
    "CoordinatorSpec",
    "Engine", "ExternalSpec", "FdwSpec", "GatewaySpec", "Ident", "LocalSpec", "MetadataSpec", "MongoSpec",
    "MonitoringSpec", "Name", "Node", "PlacementSpec", "Port", "PrimarySpec", "RedisSpec", "ReplicaSpec",
    "RepositorySpec", "Role", "S3RepositorySpec", "SecretsSpec", "SslMode", "Strict", "TlsCertSpec", "TlsSpec",
    "Topology", "VerifySpec", "WalSize", "WorkersSpec", "node_backend", "postgres_settings", "resolve_nodes",
]
