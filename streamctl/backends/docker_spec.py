"""What each node's container is (image, command, environment, ports, volume, healthcheck), as pure data.

Shared by the Docker backend and `compose export`, so both describe the same containers. Containers are
configured only through the official images' documented interface (environment and command line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamctl.config.model import Engine, Node, Topology
from streamctl.names import MONGO_ROOT_USER

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

    def definition(self) -> dict[str, Any]:
        """Everything that, when changed, requires a new container (the volume survives)."""
        return {"image": self.image, "command": self.command, "env": self.environment,
                "port": [self.host_ip, self.host_port, self.container_port],
                "mount": [self.volume, self.mount],
                "healthcheck": self.healthcheck, "stop_signal": self.stop_signal, "shm_size": self.shm_size}


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
