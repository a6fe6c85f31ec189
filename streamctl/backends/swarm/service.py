"""A node's service as the Engine API takes it (`services.create` and `update`): its secrets (found or
created), the data volume and shared memory, the health check, the restart policy, the pin to its host
and its port published in host mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamctl.backends.base import fingerprint
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.placement import Pin
from streamctl.backends.swarm.users import ImageUsers
from streamctl.config.model import Node

NS = sspec.NS


def ensure_secret(client: Any, secret: sspec.SecretFile, labels: dict[str, str]) -> str:
    """The id of the Docker secret of that name, created with `labels` when missing (secrets never
    change: a new value has a new name)."""
    with docker_errors(f"create secret {secret.name}"):
        found = client.secrets.list(filters={"name": secret.name})
        exact = [s for s in found if s.name == secret.name]
        if exact:
            return str(exact[0].id)
        made = client.secrets.create(name=secret.name, data=secret.data.encode(), labels=labels)
        return str(made.id)


def service_kwargs(node: Node, spec: sspec.ServiceSpec, pin: Pin, network: str,
                   secret_id: Callable[[sspec.SecretFile], str], users: ImageUsers) -> dict[str, Any]:
    """The arguments of the node's service, pinned to `pin`'s host; `secret_id` finds or makes a secret."""
    from docker.types import EndpointSpec, Healthcheck, Mount, RestartPolicy, SecretReference, ServiceMode

    c = spec.container
    refs = []
    for s in spec.secrets:
        uid, gid = users.ids(c.image, s.owner) if s.owner else (0, 0)
        refs.append(SecretReference(secret_id(s), s.name, filename=s.target, uid=str(uid), gid=str(gid),
                                    mode=s.mode))
    mounts = [Mount(c.mount, c.volume, type="volume", labels=dict(c.labels))]
    if c.shm_size:
        mounts.append(Mount("/dev/shm", None, type="tmpfs", tmpfs_size=_bytes(c.shm_size)))
    labels = {**c.labels, docker_spec.LABEL_FINGERPRINT: fingerprint(spec.definition()), sspec.LABEL_HOST: pin.id}
    health = Healthcheck(test=spec.healthcheck, retries=sspec.HEALTH_RETRIES,
                         **{k: v * NS for k, v in sspec.HEALTH_SECONDS.items()})
    return {
        "image": c.image, "name": spec.name, "args": spec.command or None, "env": spec.environment,
        "hostname": node.name, "labels": labels, "container_labels": dict(c.labels),
        "mounts": mounts, "secrets": refs, "healthcheck": health, "networks": [network],
        "stop_signal": c.stop_signal, "stop_grace_period": sspec.STOP_GRACE * NS,
        "mode": ServiceMode("replicated", replicas=1),
        "restart_policy": RestartPolicy(condition="any", delay=2 * NS, max_attempts=0),
        "constraints": [*spec.constraints, f"node.id == {pin.id}"],
        "endpoint_spec": EndpointSpec(mode="dnsrr", ports={c.host_port: (c.container_port, "tcp", "host")}),
    }


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = size[-1].lower()
    return int(size[:-1]) * units[unit] if unit in units else int(size)
