"""What each node's container is (image, command, environment, ports, volume, healthcheck), as pure data.

Shared by the Docker backend and `compose export`, so both describe the same containers. Containers are
configured only through the official images' documented interface (environment and command line).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamctl.config.model import BACKED_UP_ROLES, Engine, Node, Topology
from streamctl.engines import mongo as mongo_engine
from streamctl.engines import postgres as pg_engine
from streamctl.engines import redis as redis_engine
from streamctl.engines.tls import CA, server_files
from streamctl.names import MONGO_ROOT_USER
from streamctl.tls.material import NodeTls

LABEL_PREFIX = "io.streamctl"
LABEL_CLUSTER = f"{LABEL_PREFIX}.cluster"
LABEL_NODE = f"{LABEL_PREFIX}.node"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
LABEL_ENGINE = f"{LABEL_PREFIX}.engine"
LABEL_FINGERPRINT = f"{LABEL_PREFIX}.fingerprint"

CONTAINER_PORT = {Engine.POSTGRES: 5432, Engine.REDIS: 6379, Engine.MONGO: 27017}
# Where each official image keeps its data (the mount point of the node's named volume).
DATA_MOUNT = {Engine.POSTGRES: "/var/lib/postgresql/data", Engine.REDIS: "/data", Engine.MONGO: "/data/db"}
# A subdirectory of the mount, as the postgres image recommends: initdb wants an empty directory.
PGDATA = "/var/lib/postgresql/data/pgdata"
INITDB_ARGS = "--encoding=UTF8 --locale=C.UTF-8"  # the same as the local backend's initdb
# Secrets and certificates are copied into the container before it starts (never env or argv).
FILES_DIR = "/etc/streamctl"
TLS_DIR = f"{FILES_DIR}/tls"
SERVER_USER = {Engine.POSTGRES: "postgres", Engine.REDIS: "redis", Engine.MONGO: "mongodb"}
# A directory backup repository on the engine's host, mounted into each backed-up node's container; that
# node's pgBackRest configuration, log, lock and spool live in its volume, beside PGDATA (streamctl.backup).
BACKUP_REPO = "/var/lib/pgbackrest-repo"
BACKUP_HOME = "/var/lib/postgresql/data/pgbackrest"
BACKUP_CONFIG = f"{BACKUP_HOME}/pgbackrest.conf"  # a node's, or each HA member's in its own volume


def backup_binds(topology: Topology, node: Node, base: Path) -> tuple[tuple[str, str], ...]:
    """A backed-up node mounts the directory backup repository (pgBackRest runs in its container); `base` is
    the topology file's directory, where a relative repository path starts."""
    backup = topology.backup
    if not topology.backup_on or node.role not in BACKED_UP_ROLES or backup is None:
        return ()
    repo = backup.repository_dir(base)
    return ((str(repo), BACKUP_REPO),) if repo is not None else ()


@dataclass(frozen=True)
class ContainerFile:
    """A file put into the container before its first start, owned by `owner` (a user of the image)."""

    path: str
    content: bytes
    mode: int
    owner: str
    stand_in: bytes | None = None  # what the definition hashes instead of a secret content (see definition)

    @property
    def secret(self) -> bool:
        return self.stand_in is not None


def network_name(cluster: str) -> str:
    return f"{cluster}-net"


def container_name(cluster: str, node: str) -> str:
    return f"{cluster}-{node}"


def volume_name(cluster: str, node: str) -> str:
    return f"{cluster}-{node}-data"


@dataclass(frozen=True)
class ContainerSpec:
    """One node's container, independent of the Docker SDK (the backend and compose both read it)."""

    node: str
    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    container_port: int
    host_ip: str
    host_port: int
    volume: str
    mount: str
    labels: dict[str, str]
    healthcheck: list[str]  # a CMD test, run inside the container
    stop_signal: str | None = None
    shm_size: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    files: tuple[ContainerFile, ...] = ()
    binds: tuple[tuple[str, str], ...] = ()  # (host directory, mount point) beside the volume

    def definition(self) -> dict[str, Any]:
        """Everything that, when changed, requires a new container (the volume survives). A secret file counts
        by its stand-in: a new password is applied to the running node (rotate-secrets), never by a new container
        (PostgreSQL and MongoDB read theirs only when the volume is empty: a new container would lock us out)."""
        files = hashlib.sha256(b"".join(f"{f.path}|{f.mode}|{f.owner}|".encode()
                                        + (f.content if f.stand_in is None else f.stand_in)
                                        for f in self.files)).hexdigest()[:16] if self.files else None
        return {"image": self.image, "command": self.command, "env": self.environment,
                "port": [self.host_ip, self.host_port, self.container_port],
                "mount": [self.volume, self.mount],
                "healthcheck": self.healthcheck, "stop_signal": self.stop_signal, "shm_size": self.shm_size,
                **({"files": files} if files else {}), **({"binds": list(self.binds)} if self.binds else {})}


def _tls_files(node: Node, tls: NodeTls | None) -> list[ContainerFile]:
    if tls is None:
        return []
    owner = SERVER_USER[node.engine]
    return [ContainerFile(f"{TLS_DIR}/{name}", content, mode, owner)
            for name, (content, mode) in server_files(node.engine.value, tls).items()]


def secure_spec(topology: Topology, node: Node, secrets: dict[str, str], tls: NodeTls | None) -> ContainerSpec:
    """The Docker backend's container: passwords and certificates as files (0600) put in before the first
    start, so neither `docker inspect` nor `ps` inside shows a password; TLS when `tls` is given."""
    spec = container_spec(topology, node, secrets)
    owner = SERVER_USER[node.engine]
    files = _tls_files(node, tls)
    if node.engine is Engine.POSTGRES:
        pw_file = f"{FILES_DIR}/postgres_password"
        files.append(_secret_file(pw_file, secrets, "postgres_password", owner))
        env = {k: v for k, v in spec.environment.items() if k != "POSTGRES_PASSWORD"}
        env["POSTGRES_PASSWORD_FILE"] = pw_file  # the official image's documented *_FILE variant
        command = list(spec.command)
        for key, value in pg_engine.tls_settings(TLS_DIR, topology.runs_citus(node.role)) if tls else []:
            command += ["-c", f"{key}={value}"]
        return replace_spec(spec, command=command, environment=env, files=tuple(files))
    if node.engine is Engine.REDIS:
        pw_file = f"{FILES_DIR}/redis_password"
        files += [ContainerFile(f"{FILES_DIR}/redis.conf", redis_conf(secrets["redis_password"], tls is not None),
                                0o600, owner, stand_in=redis_conf("<redis_password>", tls is not None)),
                  _secret_file(pw_file, secrets, "redis_password", "root")]
        tls_args = f"--tls --cacert {TLS_DIR}/{CA} " if tls else ""
        # The healthcheck reads the password from a file inside the container: not in its command line.
        health = ["sh", "-c", f'REDISCLI_AUTH="$(cat {pw_file})" redis-cli {tls_args}-h 127.0.0.1 -p 6379 ping '
                              "| grep -q PONG"]
        return replace_spec(spec, command=["redis-server", f"{FILES_DIR}/redis.conf"], healthcheck=health,
                            files=tuple(files))
    pw_file = f"{FILES_DIR}/mongo_password"
    files.append(_secret_file(pw_file, secrets, "mongo_password", owner))
    env = {k: v for k, v in spec.environment.items() if k != "MONGO_INITDB_ROOT_PASSWORD"}
    env["MONGO_INITDB_ROOT_PASSWORD_FILE"] = pw_file  # documented by the official mongo image
    command = ["mongod", *mongo_engine.tls_args(TLS_DIR)] if tls else []
    health = (["mongosh", "--quiet", "--tls", "--tlsCAFile", f"{TLS_DIR}/{CA}", "--host", "127.0.0.1",
               "--eval", "db.adminCommand('ping').ok"] if tls else spec.healthcheck)
    return replace_spec(spec, command=command, environment=env, healthcheck=health, files=tuple(files))


def _secret_file(path: str, secrets: dict[str, str], key: str, owner: str) -> ContainerFile:
    return ContainerFile(path, secrets[key].encode(), 0o600, owner, stand_in=f"<{key}>".encode())


def redis_conf(password: str, tls: bool) -> bytes:
    """Redis's configuration file: rewritten in place when redis_password is rotated, so a restart keeps it."""
    return redis_engine.conf(password, 6379, TLS_DIR if tls else None).encode()


def replace_spec(spec: ContainerSpec, **changes: Any) -> ContainerSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def container_spec(topology: Topology, node: Node, secrets: dict[str, str]) -> ContainerSpec:
    """The container for one node; `secrets` may hold real values or `${VAR}` placeholders (compose)."""
    cluster = topology.cluster
    labels = {LABEL_CLUSTER: cluster, LABEL_NODE: node.name, LABEL_ROLE: node.role.value,
              LABEL_ENGINE: node.engine.value}
    common: dict[str, Any] = {
        "node": node.name, "name": container_name(cluster, node.name), "image": node.image,
        "container_port": CONTAINER_PORT[node.engine], "host_ip": node.bind, "host_port": node.port,
        "volume": volume_name(cluster, node.name), "mount": DATA_MOUNT[node.engine], "labels": labels,
    }
    if node.engine is Engine.POSTGRES:
        settings = [("listen_addresses", "*"), *node.settings]
        command = ["postgres"]
        for key, value in settings:
            command += ["-c", f"{key}={value}"]
        env = {"POSTGRES_USER": topology.pg_user, "POSTGRES_PASSWORD": secrets["postgres_password"],
               "POSTGRES_DB": node.database or "postgres", "PGDATA": PGDATA,
               "POSTGRES_INITDB_ARGS": INITDB_ARGS}
        health = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", topology.pg_user,
                  "-d", node.database or "postgres"]
        # SIGINT is PostgreSQL's fast shutdown (what the official image declares); a larger /dev/shm
        # because Docker's 64 MB default is too small for parallel queries.
        return ContainerSpec(command=command, environment=env, healthcheck=health, stop_signal="SIGINT",
                             shm_size="256m", **common)
    if node.engine is Engine.REDIS:
        password = secrets["redis_password"]
        command = ["redis-server", "--requirepass", password, "--appendonly", "yes", "--port", "6379"]
        health = ["redis-cli", "--no-auth-warning", "-a", password, "ping"]
        return ContainerSpec(command=command, environment={}, healthcheck=health, **common)
    env = {"MONGO_INITDB_ROOT_USERNAME": MONGO_ROOT_USER,
           "MONGO_INITDB_ROOT_PASSWORD": secrets["mongo_password"]}
    health = ["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"]
    return ContainerSpec(command=[], environment=env, healthcheck=health, **common)


HEALTH_SECONDS = {"interval": 10, "timeout": 5, "start_period": 60}
HEALTH_RETRIES = 6


def healthcheck_config(spec: ContainerSpec) -> dict[str, Any]:
    """Docker's own healthcheck (compose syntax), so `docker ps` shows health too; streamctl's readiness
    probes from outside and does not depend on it."""
    return {"test": ["CMD", *spec.healthcheck], **{k: f"{v}s" for k, v in HEALTH_SECONDS.items()},
            "retries": HEALTH_RETRIES}
