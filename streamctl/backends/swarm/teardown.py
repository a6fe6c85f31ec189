"""Removing what the Swarm backend made: a node's volume on whichever host holds it (volumes.py; recorded
when it cannot go now), and at `down --volumes` the cluster's services, secrets, leftover volumes and
network, this instance's only (another state directory's of the same cluster name stay)."""

from __future__ import annotations

from typing import Any

from streamctl.backends.docker import owner
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm.hosts import SwarmHosts
from streamctl.backends.swarm.placement import Pin
from streamctl.backends.swarm.volumes import Leftover, SwarmVolumes
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, StreamctlError
from streamctl.ownership import LABEL_INSTANCE


def remove_volume(hosts: SwarmHosts, volumes: SwarmVolumes, node: Node, cluster: str, image_ran: str,
                  fallback: str) -> str | None:
    """The node's volume removed where it lives, and its pin forgotten; None, or why it could not go now
    (then it stays recorded, for the next `up` or `down --volumes`)."""
    name = docker_spec.volume_name(cluster, node.name)
    recorded = {x.volume: x for x in volumes.leftovers()}
    pin = hosts.pin(node.name) or (recorded[name].host if name in recorded else
                                   Pin(hosts.local_id, "this engine", ""))
    # An orphan (gone from the topology) carries no image: the removal task runs the one its service ran,
    # else the recorded one, else `fallback` (every node's image has the Perl the task needs).
    image = node.image or image_ran or (recorded[name].image if name in recorded else "") or fallback
    left = Leftover(name, node.name, pin, image)
    why = hosts.unavailable(pin) if pin.id != hosts.local_id else None
    if why:
        volumes.remove_later(left)
    else:
        why = volumes.remove(left)
    hosts.forget(node.name)
    return f"{left.describe()}: {why}" if why else None


def remove_cluster(client: Any, ctx: ClusterContext, hosts: SwarmHosts, volumes: SwarmVolumes, network: str,
                   unremoved: list[str]) -> None:
    """The cluster's services, secrets, recorded volumes (on every host) and network. `unremoved`: the
    volumes this run could not remove already. Volumes that cannot go now stay recorded and make this
    fail, so the state that records them is kept."""
    cluster, mine = ctx.topology.cluster, ctx.ownership.mine
    flt = {"label": f"{docker_spec.LABEL_CLUSTER}={cluster}"}
    with docker_errors("remove the cluster's services and secrets"):
        for service in client.services.list(filters=flt):
            if mine((service.attrs.get("Spec", {}).get("Labels") or {}).get(LABEL_INSTANCE)):
                service.remove()
        for secret in client.secrets.list(filters=flt):
            if mine((secret.attrs.get("Spec", {}).get("Labels") or {}).get(LABEL_INSTANCE)):
                secret.remove()
    problems = list(unremoved)
    tried = {u.split(" ", 2)[1] for u in unremoved}
    for left in volumes.leftovers():  # recorded by an earlier run: once more
        if left.volume not in tried:
            why = hosts.unavailable(left.host) or volumes.remove(left)
            if why:
                problems.append(f"{left.describe()}: {why}")
    problems = problems if volumes.leftovers() else []
    try:
        with docker_errors(f"remove network {network}"):
            for net in owner.own_networks(client, network, cluster, ctx.ownership):
                hosts.remove_network(net)
    except StreamctlError as exc:
        if not problems:
            raise
        problems.append(f"network {network}: {exc.message}")  # a lost host's tasks may hold it
    if problems:
        raise BackendError("the cluster is removed, but some volumes could not be removed; they stay recorded",
                           details=problems, hint="`streamctl status` lists them; the next `streamctl up` "
                                                  "or `down --volumes` removes them once their host answers")
