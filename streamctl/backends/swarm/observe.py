"""The cluster's Swarm services as streamctl finds them: one per node (a service of that name made for
another cluster, or owned by another state directory, is refused), their tasks, and what those say about
a node (observe, readiness)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streamctl.backends.base import NodeState, Observation
from streamctl.backends.docker import owner
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm.hosts import SwarmHosts
from streamctl.backends.swarm.volumes import SwarmVolumes
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR


def service_labels(service: Any) -> dict[str, str]:
    return service.attrs.get("Spec", {}).get("Labels") or {}


class ClusterServices:
    """Finds and reads the nodes' services through the manager's client."""

    def __init__(self, client: Any, ctx: ClusterContext, hosts: SwarmHosts) -> None:
        self.client, self.ctx, self.hosts = client, ctx, hosts
        self.cluster = ctx.topology.cluster

    def find(self, node: Node) -> Any | None:
        """The node's service, or None; raises when another state directory's instance owns it."""
        return owner.find_named(self.client.services.get, service_labels, "service",
                                docker_spec.container_name(self.cluster, node.name), self.cluster, node.name,
                                self.ctx.ownership, "docker service rm")

    @staticmethod
    def tasks(service: Any) -> list[dict[str, Any]]:
        """The service's tasks, the newest first."""
        with docker_errors(f"list the tasks of {service.name}"):
            tasks = service.tasks()
        return sorted(tasks, key=lambda t: t.get("Version", {}).get("Index", 0), reverse=True)

    def observe(self, node: Node, volumes: SwarmVolumes) -> Observation:
        """The node's service, its host and its newest task, with the volumes still to be removed."""
        obs = self._observe(node)
        left = volumes.of_node(node.name)
        if not left:
            return obs
        note = "; ".join(f"{x.describe()} still to be removed" for x in left)
        return replace(obs, detail=f"{obs.detail}; {note}" if obs.detail else note)

    def _observe(self, node: Node) -> Observation:
        service = self.find(node)
        pin = self.hosts.pin(node.name)
        gone = self.hosts.unavailable(pin) if pin else None
        if service is None:
            self._check_volume(node)
            return Observation(node.name, NodeState.MISSING, None, f"pinned to {gone}" if gone else "")
        labels = service.attrs["Spec"].get("Labels") or {}
        fp = labels.get(docker_spec.LABEL_FINGERPRINT)
        # Taken over (legacy or --adopt): a rolling update relabels it on the same host, volume kept.
        takeover = owner.taken_over_from(self.ctx.ownership, "service", service.name, labels)
        where = pin.describe() if pin else "an unknown host"
        if gone:
            return Observation(node.name, NodeState.STOPPED, fp, f"pinned to {gone}; nothing was moved", takeover)
        replicas = service.attrs["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 0)
        if replicas == 0:
            return Observation(node.name, NodeState.STOPPED, fp, f"scaled to 0 on {where}", takeover)
        tasks = self.tasks(service)
        state = tasks[0]["Status"]["State"] if tasks else "no task yet"
        return Observation(node.name, NodeState.RUNNING, fp, f"task {state} on {where}", takeover)

    def _check_volume(self, node: Node) -> None:
        """A volume left without its service (on this engine's host): refused when another instance made it."""
        from docker.errors import NotFound

        name = docker_spec.volume_name(self.cluster, node.name)
        with docker_errors(f"inspect volume {name}"):
            try:
                labels = self.client.api.inspect_volume(name).get("Labels") or {}
            except NotFound:
                return
        self.ctx.ownership.check(f"volume {name}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR))

    def task_running(self, node: Node) -> bool:
        """Swarm's own verdict: the task passed its health check, so its name resolves on the overlay."""
        service = self.find(node)
        tasks = [t for t in self.tasks(service) if t.get("DesiredState") == "running"] if service else []
        if not any(t["Status"]["State"] == "running" for t in tasks):
            state = tasks[0]["Status"]["State"] if tasks else "no task"
            raise BackendError(f"task {state}: Swarm adds it to the overlay's DNS once its health check passes")
        return True

    def alive(self, node: Node) -> bool:
        """False only when Swarm refuses the task outright (no such image on the host, for instance)."""
        service = self.find(node)
        if service is None:
            return False
        tasks = self.tasks(service)
        return not tasks or tasks[0]["Status"]["State"] != "rejected"
