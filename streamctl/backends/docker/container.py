"""A node's container made from its spec (spec.py): the named volume (a copy of the cluster's initialised
template when it is new), the port, the network alias, the health check, the files, the instance marker;
then started. The image is present already (images.py)."""

from __future__ import annotations

from typing import Any

from streamctl.backends.base import fingerprint
from streamctl.backends.docker import owner, spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import UserIds, put_files
from streamctl.backends.docker.template import VolumeTemplates
from streamctl.config.model import Engine, Node

NS = 1_000_000_000  # the Engine API takes the healthcheck's durations in nanoseconds


def volume_exists(api: Any, name: str) -> bool:
    with docker_errors(f"inspect volume {name}"):
        found = api.volumes(filters={"name": name}).get("Volumes") or []
    return any(v["Name"] == name for v in found)


def create_container(api: Any, node: Node, s: spec.ContainerSpec, network: str, templates: VolumeTemplates,
                     user_ids: UserIds, marker: str) -> None:
    """Create the node's container on `network` and start it; its volume stays when it exists already."""
    fresh = node.engine is Engine.POSTGRES and not volume_exists(api, s.volume)
    if fresh:  # the template (once per image) initialises while this node's container is made
        templates.start(s)
    templates.wait_launched()  # the template's container first: it is the longest path
    with docker_errors(f"create volume {s.volume}"):
        api.create_volume(s.volume, labels={**s.labels})
    host_config = api.create_host_config(
        port_bindings={s.container_port: (s.host_ip, s.host_port)},
        binds={s.volume: {"bind": s.mount, "mode": "rw"}, **{h: {"bind": m, "mode": "rw"} for h, m in s.binds}},
        shm_size=s.shm_size,
    )
    networking = api.create_networking_config({network: api.create_endpoint_config(aliases=[node.name])})
    health = {"test": ["CMD", *s.healthcheck], "retries": spec.HEALTH_RETRIES,
              **{k: v * NS for k, v in spec.HEALTH_SECONDS.items()}}
    labels = {**s.labels, spec.LABEL_FINGERPRINT: fingerprint(s.definition())}
    with docker_errors(f"create container {s.name}"):
        created = api.create_container(
            s.image, command=s.command or None, name=s.name, hostname=node.name,
            environment=s.environment, labels=labels, ports=[s.container_port], host_config=host_config,
            networking_config=networking, stop_signal=s.stop_signal, healthcheck=health)
    put_files(api, created["Id"], s.image, s.name, s.files, user_ids)
    # The container and its files exist before the template is cloned into the volume: that work goes
    # on while another node's thread initialises the template.
    if fresh:  # a copy of the cluster's initialised template: the entrypoint then skips initdb
        templates.populate(s)
    owner.write_marker(api, created["Id"], s.mount, marker, s.name)
    with docker_errors(f"start container {s.name}"):
        api.start(created["Id"])
