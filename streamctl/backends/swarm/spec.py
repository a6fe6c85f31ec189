"""What each node's Swarm service is, as pure data derived from the Docker backend's container spec.

The container (image, command, settings, volume, labels) is the Docker backend's own `ContainerSpec`;
Swarm changes only how passwords arrive: as Docker secrets, through the official images' `*_FILE`
variables and, for Redis, a config file, so no password is ever in the service's environment or argv.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from streamctl.backends.docker import spec as docker_spec
from streamctl.config import constraints as cons
from streamctl.config.model import BACKED_UP_ROLES, Engine, Node, Topology
from streamctl.engines import mongo as mongo_engine
from streamctl.engines import postgres as pg_engine
from streamctl.engines import redis as redis_engine
from streamctl.engines.tls import CA, server_files
from streamctl.tls.material import NodeTls

LABEL_HOST = f"{docker_spec.LABEL_PREFIX}.swarm.host"  # the Swarm node id the service is pinned to
SECRETS_DIR = "/run/secrets"
NS = 1_000_000_000  # the Engine API takes durations in nanoseconds
STOP_GRACE = 60  # seconds a node's task (or HA member's) has to stop before Docker kills it
REDIS_CONF = "streamctl-redis.conf"
# Environment variables of the official images that take a password, and the secret that fills them.
PASSWORD_ENV = {"POSTGRES_PASSWORD": "postgres_password", "MONGO_INITDB_ROOT_PASSWORD": "mongo_password"}

# Swarm names a task in the overlay's DNS (and calls it running) only once its health check passes, and
# engines before API 1.44 have no start_interval: the first check runs one `interval` after start. A short
# interval is what lets peers (Citus, replication, FDW) resolve a new service seconds after it answers.
HEALTH_SECONDS = {"interval": 2, "timeout": 5, "start_period": 60}
HEALTH_RETRIES = 15  # 30 s of failures after the start period before Swarm replaces the task


# Swarm replaces a crashed task with a new one at a new address; the old one's connections vanish without a
# reset. A walsender (or walreceiver) waits this long before it gives the peer up, and with it the slot the
# replacement needs (PostgreSQL's default: 60 s of nothing replicated).
REPLACED_PEER_SETTINGS = (("wal_sender_timeout", "15s"), ("wal_receiver_timeout", "15s"))


def network_name(cluster: str) -> str:
    return f"{cluster}-overlay"


@dataclass(frozen=True)
class SecretFile:
    """One Docker secret: its (content-addressed, so immutable) name, where it lands, and its bytes."""

    name: str
    target: str
    data: str = field(repr=False)
    owner: str | None = None  # a user of the image (uid/gid looked up by the backend); None: root
    mode: int = 0o444


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
                "secrets": sorted((s.name, s.target, s.owner or "root", s.mode) for s in self.secrets),
                "port": [c.host_port, c.container_port], "mount": [c.volume, c.mount],
                "healthcheck": self.healthcheck, "health": [HEALTH_SECONDS, HEALTH_RETRIES],
                "stop_signal": c.stop_signal, "shm_size": c.shm_size,
                "constraints": list(self.constraints)}


def secret_name(cluster: str, key: str, data: str) -> str:
    """Secrets cannot change in place: a new value is a new secret, named by a digest of its content."""
    digest = hashlib.sha256(f"{cluster}\0{key}\0{data}".encode()).hexdigest()[:12]
    return f"{cluster[:30]}-{key}-{digest}"


def _redis_conf(password: str, tls: bool) -> str:
    """The secret's content names it: without the header, as it always was, so a running service is not
    updated for a comment."""
    return redis_engine.conf(password, 6379, SECRETS_DIR if tls else None, header=False)


def tls_secrets(cluster: str, engine: Engine, tls: NodeTls) -> list[SecretFile]:
    """The server's CA, certificate and key as secrets under SECRETS_DIR, where its settings look; keys 0600
    and owned by the server's user (PostgreSQL and Redis refuse to read a key they cannot, or others can)."""
    owner = docker_spec.SERVER_USER[engine]
    out = []
    for name, (content, mode) in server_files(engine.value, tls).items():
        data = content.decode()
        key = "tls-" + name.replace(".", "-")
        out.append(SecretFile(secret_name(cluster, key, data), name, data, owner, mode))
    return out


def service_spec(topology: Topology, node: Node, secrets: dict[str, str],
                 tls: NodeTls | None = None) -> ServiceSpec:
    """The service for one node; `secrets` are the real values, which end up only in Docker secrets, and
    `tls` (when the cluster's TLS covers the node) its certificates, delivered the same way."""
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
    if node.engine is Engine.POSTGRES:
        command += [arg for key, value in REPLACED_PEER_SETTINGS for arg in ("-c", f"{key}={value}")]
    health = ["CMD", *container.healthcheck]
    if tls is not None:
        files += tls_secrets(cluster, node.engine, tls)
        if node.engine is Engine.POSTGRES:
            for key, value in pg_engine.tls_settings(SECRETS_DIR, topology.runs_citus(node.role)):
                command += ["-c", f"{key}={value}"]
        elif node.engine is Engine.MONGO:
            command = ["mongod", *mongo_engine.tls_args(SECRETS_DIR)]
            health = ["CMD", "mongosh", "--quiet", "--tls", "--tlsCAFile", f"{SECRETS_DIR}/{CA}",
                      "--host", "127.0.0.1", "--eval", "db.adminCommand('ping').ok"]
    if tls is not None and topology.backup_on and node.role in BACKED_UP_ROLES:
        from streamctl.backends.swarm.backup import node_command

        command = node_command(command)  # pgBackRest's TLS server beside PostgreSQL (backup.py)
    if node.engine is Engine.REDIS:
        conf = _redis_conf(secrets["redis_password"], tls is not None)
        files.append(SecretFile(secret_name(cluster, "redis_conf", conf), REDIS_CONF, conf))
        # The config file (from the secret) holds requirepass and the listening ports; argv holds nothing.
        command = ["redis-server", f"{SECRETS_DIR}/{REDIS_CONF}"]
        # Alive means answering at all: an unauthenticated PING gets NOAUTH, and needs no password.
        cli = f"redis-cli --tls --cacert {SECRETS_DIR}/{CA}" if tls is not None else "redis-cli"
        health = ["CMD-SHELL", f"{cli} -h 127.0.0.1 -p 6379 ping 2>&1 | grep -qE 'PONG|NOAUTH'"]
    return ServiceSpec(name=container.name, container=container, command=command, environment=env,
                       secrets=tuple(files), healthcheck=health,
                       constraints=tuple(str(c) for c in cons.for_node(topology, node)))
