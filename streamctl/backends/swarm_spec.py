"""What each node's Swarm service is, as pure data derived from the Docker backend's container spec.

The container (image, command, settings, volume, labels) is the Docker backend's own `ContainerSpec`;
Swarm changes only how passwords arrive: as Docker secrets, through the official images' `*_FILE`
variables and, for Redis, a config file, so no password is ever in the service's environment or argv.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from streamctl.backends import docker_spec
from streamctl.config import constraints as cons
from streamctl.config.model import Engine, Node, Topology

LABEL_HOST = f"{docker_spec.LABEL_PREFIX}.swarm.host"  # the Swarm node id the service is pinned to
SECRETS_DIR = "/run/secrets"
REDIS_CONF = "streamctl-redis.conf"
# Environment variables of the official images that take a password, and the secret that fills them.
PASSWORD_ENV = {"POSTGRES_PASSWORD": "postgres_password", "MONGO_INITDB_ROOT_PASSWORD": "mongo_password"}

# Swarm names a task in the overlay's DNS (and calls it running) only once its health check passes, and
# engines before API 1.44 have no start_interval: the first check runs one `interval` after start. A short
# interval is what lets peers (Citus, replication, FDW) resolve a new service seconds after it answers.
HEALTH_SECONDS = {"interval": 2, "timeout": 5, "start_period": 60}
HEALTH_RETRIES = 15  # 30 s of failures after the start period before Swarm replaces the task


def network_name(cluster: str) -> str:
    return f"{cluster}-overlay"


@dataclass(frozen=True)
class SecretFile:
    """One Docker secret: its (content-addressed, so immutable) name, where it lands, and its bytes."""

    name: str
    target: str
    data: str = field(repr=False)


@dataclass(frozen=True)
class ServiceSpec:
    """One node's Swarm service, independent of the SDK (the backend turns it into API objects)."""

    name: str
    container: docker_spec.ContainerSpec
    command: list[str]
    environment: dict[str, str]
    secrets: tuple[SecretFile, ...]
    healthcheck: list[str]  # a CMD-SHELL or CMD test
    constraints: tuple[str, ...]  # the topology's, without the pin

    def definition(self) -> dict[str, Any]:
        """Everything that, when changed, needs a `service update` (never the pin, never a secret's value)."""
        c = self.container
        return {"image": c.image, "command": self.command, "env": self.environment,
                "secrets": sorted((s.name, s.target) for s in self.secrets),
                "port": [c.host_port, c.container_port], "mount": [c.volume, c.mount],
                "healthcheck": self.healthcheck, "health": [HEALTH_SECONDS, HEALTH_RETRIES],
                "stop_signal": c.stop_signal, "shm_size": c.shm_size,
                "constraints": list(self.constraints)}


def secret_name(cluster: str, key: str, data: str) -> str:
    """Secrets cannot change in place: a new value is a new secret, named by a digest of its content."""
    digest = hashlib.sha256(f"{cluster}\0{key}\0{data}".encode()).hexdigest()[:12]
    return f"{cluster[:30]}-{key}-{digest}"


def _redis_conf(password: str) -> str:
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'requirepass "{quoted}"\n'


def service_spec(topology: Topology, node: Node, secrets: dict[str, str]) -> ServiceSpec:
    """The service for one node; `secrets` are the real values, which end up only in Docker secrets."""
    cluster = topology.cluster
    container = docker_spec.container_spec(topology, node, secrets)
    env = dict(container.environment)
    files: list[SecretFile] = []
    for var, key in PASSWORD_ENV.items():
        if var in env:
            env.pop(var)
            files.append(SecretFile(secret_name(cluster, key, secrets[key]), key, secrets[key]))
            env[f"{var}_FILE"] = f"{SECRETS_DIR}/{key}"
    command = list(container.command)
    health = ["CMD", *container.healthcheck]
    if node.engine is Engine.REDIS:
        conf = _redis_conf(secrets["redis_password"])
        files.append(SecretFile(secret_name(cluster, "redis_conf", conf), REDIS_CONF, conf))
        # The config file (from the secret) holds requirepass; the command line keeps only the rest.
        command = ["redis-server", f"{SECRETS_DIR}/{REDIS_CONF}", "--appendonly", "yes", "--port", "6379"]
        # Alive means answering at all: an unauthenticated PING gets NOAUTH, and needs no password.
        health = ["CMD-SHELL", "redis-cli -p 6379 ping 2>&1 | grep -qE 'PONG|NOAUTH'"]
    return ServiceSpec(name=container.name, container=container, command=command, environment=env,
                       secrets=tuple(files), healthcheck=health,
                       constraints=tuple(str(c) for c in cons.for_node(topology, node)))
