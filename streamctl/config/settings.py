"""The topology's cluster-wide settings beside its servers: TLS, fixed secrets, the local backend's
binaries, verify's bounds, Swarm placement, backups and high availability."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from streamctl.config.fields import Constraint, Port, Strict


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

    def repository_dir(self, base: Path) -> Path | None:
        """A directory repository as an absolute path (a relative one starts at `base`, the topology file's
        directory); None for an S3 repository. The local backend runs pgBackRest on it, the Docker backend
        mounts it into each backed-up node's container."""
        if self.repository.path is None:
            return None
        path = Path(self.repository.path)
        return (path if path.is_absolute() else base / path).absolute()

class HaGroupSpec(Strict):
    """One kind of group's own number of standbys (default: `ha.standbys`)."""

    standbys: int | None = Field(None, ge=0, le=4)


class EtcdSpec(Strict):
    """The DCS Patroni keeps its leader keys in: 1 member (one host) or 3 (a quorum across hosts). Member i
    listens for clients on port + i and for its peers on peer_port + i (peer_port: by default the first port
    after the client ports, 12380 with one member, 12382 with three)."""

    members: Literal[1, 3] = 1
    port: Port = 12379
    peer_port: Port | None = None

    @property
    def first_peer_port(self) -> int:
        return self.peer_port if self.peer_port is not None else self.port + self.members


class HaSpec(Strict):
    """High availability with Patroni and etcd (off unless the section is present): each Citus group (the
    coordinator, every worker) is a leader and its standbys. A group's first member is the node the topology
    already names, on its port; standbys take PostgreSQL ports from `port` up, and every member a REST port
    from `rest_port` up, group after group."""

    enabled: bool = True
    standbys: int = Field(1, ge=0, le=4)
    coordinator: HaGroupSpec = HaGroupSpec()
    workers: HaGroupSpec = HaGroupSpec()
    # The analytics primary is a plain Patroni cluster only when given standbys here (ha.standbys does not reach
    # it): its replicas' slots become Patroni's permanent logical slots.
    analytics: HaGroupSpec = HaGroupSpec(standbys=0)
    synchronous: Literal["off", "on", "quorum"] = "off"
    etcd: EtcdSpec = EtcdSpec()
    ttl: int = 20  # seconds a leader key lives: Patroni's minimum, 20, is also the failover time after a crash
    loop_wait: int = Field(5, ge=1)  # seconds between two runs of Patroni's loop
    port: Port = 17432
    rest_port: Port = 18008

    @field_validator("synchronous", mode="before")
    @classmethod
    def _yaml_switch(cls, value: object) -> object:
        """YAML reads a bare `on` / `off` as true / false."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
