"""Swarm backend: every node is a one-replica Swarm service, pinned to the host that holds its volume.

Services share a private (not attachable) overlay network per cluster and reach each other by service name (DNS
round-robin endpoints: no IPVS needed); streamctl reaches them on ports published in host mode on the
host running the task. Passwords travel as Docker secrets. Driven through the manager at DOCKER_HOST.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from functools import cached_property
from typing import Any

from streamctl.backends.base import Action, Notify, Observation, fingerprint, group_ready, node_readiness
from streamctl.backends.docker import owner
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.engine import EngineBackend
from streamctl.backends.docker.errors import connect, docker_errors
from streamctl.backends.docker.ha import LABEL_HA
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.ha import SwarmHa
from streamctl.backends.swarm.hosts import SwarmHosts
from streamctl.backends.swarm.observe import ClusterServices
from streamctl.backends.swarm.preflight import SwarmPreflight, refuse_one_address
from streamctl.backends.swarm.service import ensure_secret, service_kwargs
from streamctl.backends.swarm.teardown import remove_cluster, remove_volume
from streamctl.backends.swarm.users import ImageUsers
from streamctl.backends.swarm.volumes import SwarmVolumes
from streamctl.config.members import Group, ha_groups
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, PreflightError
from streamctl.events import Progress
from streamctl.ha.convert import mode_refusal
from streamctl.readiness import Readiness
from streamctl.state import Endpoint
from streamctl.tls.material import node_names


class SwarmBackend(EngineBackend):
    """Runs each node as a Swarm service; `down` scales it to zero (the service, pin and volume stay)."""

    name = "swarm"

    def __init__(self, ctx: ClusterContext, progress: Progress | None = None) -> None:
        super().__init__(ctx, progress)
        self._hosts: SwarmHosts | None = None
        self._unremoved: list[str] = []  # volumes `remove` could not delete (recorded; teardown reports them)
        self._groups: dict[str, Group] = {g.node.name: g for g in ha_groups(self.topology)}
        self.ha = SwarmHa(self, self._groups)  # the Citus groups under HA: a service per member (ha.py)

    @cached_property
    def users(self) -> ImageUsers:
        return ImageUsers(self.client)

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> Any:
        """The manager's client; every command learns first, in one clear error, when it is not a manager."""
        client = connect()
        hosts = SwarmHosts(client, self.ctx)
        hosts.require_manager()
        self._hosts = hosts
        return client

    @property
    def hosts(self) -> SwarmHosts:
        self.client  # noqa: B018 - connects, checks the manager and sets the hosts
        assert self._hosts is not None
        return self._hosts

    @property
    def volumes(self) -> SwarmVolumes:
        return SwarmVolumes(self.client, self.ctx, self.hosts.local_id)

    @property
    def network(self) -> str:
        return sspec.network_name(self.topology.cluster)

    @property
    def services(self) -> ClusterServices:
        return ClusterServices(self.client, self.ctx, self.hosts)

    @property
    def checks(self) -> SwarmPreflight:
        return SwarmPreflight(self.client, self.ctx, self.hosts, self.volumes, self.services)

    def preflight(self, nodes: list[Node]) -> None:
        """Before any change: ports Swarm can publish, a reachable manager, and the checks of preflight.py."""
        refuse_one_address(self.topology)
        for node in (n for n in nodes if n.is_postgres):
            # HA turned on for a service made without Patroni (its data beside a fresh, empty leader), or off
            # for one Patroni runs: refused before anything changes
            service = self.services.find(node)
            if service is not None:
                patroni_runs = (service.attrs["Spec"].get("Labels") or {}).get(LABEL_HA) == "member"
                refusal = mode_refusal(node, patroni_runs, node.name in self._groups)
                if refusal is not None:
                    raise refusal
        self.checks.check([n for n in nodes if n.name not in self._groups])
        if self._groups:
            self.ha.plan()

    def unreachable(self, nodes: list[Node]) -> dict[str, str]:
        """Nodes pinned to a host that cannot run them now (left, down, drained, paused): `up` converges
        the others and reports these; nothing is ever moved to another host."""
        return self.checks.unreachable(nodes)

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        self.checks.prepare([c for c in changes if c[0].name not in self._groups], notify)

    # -- definitions ------------------------------------------------------------------------------
    def spec(self, node: Node, issue: bool = False) -> sspec.ServiceSpec:
        """The node's service; with issue=True its certificate is (re)issued first (only `apply` does)."""
        s = sspec.service_spec(self.topology, node, self.ctx.store.known_secrets(self.topology),
                               self._tls(node, issue))
        labels = {**s.container.labels, **self.ctx.ownership.labels()}  # service, containers and volume
        return replace(s, container=docker_spec.replace_spec(s.container, labels=labels))

    def desired_fingerprint(self, node: Node) -> str:
        group = self._groups.get(node.name)
        return fingerprint(self.ha.definition(group)) if group else super().desired_fingerprint(node)

    def tls_covers(self, node: Node) -> bool:
        return self.ctx.managed_tls(node.name)

    def tls_names(self, node: Node) -> set[str]:
        """What the certificate covers: the node and service names, loopback, and the address of the host
        its port is published on (the pinned or planned Swarm host)."""
        group = self._groups.get(node.name)
        if group is not None:  # every member's name, service and host: one certificate for the group
            return (node_names(self.topology, node) | {m.name for m in group.members}
                    | {self.ha.service(m.name) for m in group.members} | self.ha.hosts_of(group))
        pin = self.hosts.pin(node.name) or self.hosts.planned(node.name)
        return node_names(self.topology, node) | ({pin.addr} if pin and pin.addr else set())

    # -- observation ------------------------------------------------------------------------------
    def _find(self, node: Node) -> Any | None:
        return self.services.find(node)

    def observe(self, node: Node) -> Observation:
        if node.name in self._groups:
            return self.ha.observe(self._groups[node.name])
        return self.services.observe(node, self.volumes)

    def leftover_volumes(self) -> list[tuple[str, str]]:
        """(node, description) of every volume recorded as not removed yet (`status` lists them)."""
        return [(x.node, x.describe()) for x in self.volumes.leftovers()]

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, node: Node, action: Action) -> None:
        if node.name in self._groups and action is not Action.NOOP:
            self.ha.apply(self._groups[node.name], recreate=action is Action.RECREATE)
        else:
            super().apply(node, action)

    def _start(self, found: Any) -> None:
        with docker_errors(f"scale {found.name} to 1"):
            found.scale(1)

    def _launch(self, node: Node, found: Any | None) -> None:
        pin = self.hosts.pin(node.name) or self.hosts.place(node)
        spec = self.spec(node, issue=True)
        kwargs = service_kwargs(node, spec, pin, self.network, self._ensure_secret, self.users)
        if found is not None:  # RECREATE: a rolling `service update` on the same host keeps the volume
            with docker_errors(f"update service {spec.name}"):
                found.update(**kwargs)
            return
        self._ensure_network()
        with docker_errors(f"create service {spec.name}"):
            self.client.services.create(**kwargs)

    def _ensure_secret(self, secret: sspec.SecretFile) -> str:
        with self._lock:
            return ensure_secret(self.client, secret, {docker_spec.LABEL_CLUSTER: self.topology.cluster,
                                                       **self.ctx.ownership.labels()})

    def _ensure_network(self) -> None:
        with self._lock:  # not twice at once from the nodes' threads
            # Not attachable: no standalone container joins it, so its subnet admits only the cluster.
            owner.ensure_network(self.client, self.network, self.topology.cluster, self.ctx.ownership,
                                 driver="overlay", attachable=False, scope="swarm")

    def stop(self, node: Node) -> None:
        if node.name in self._groups:
            return self.ha.stop(self._groups[node.name])
        service = self._find(node)
        if service is not None:
            with docker_errors(f"scale {service.name} to 0"):
                service.scale(0)
            self.hosts.wait_no_task(service)

    def remove(self, node: Node, volumes: bool) -> None:
        if node.name in self._groups:
            problems = self.ha.remove(self._groups[node.name], volumes)
            with self._lock:
                self._unremoved += problems
            return
        service = self._find(node)
        image_ran = ""
        if service is not None:
            image_ran = service.attrs.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image", "")
            with docker_errors(f"remove service {service.name}"):
                service.remove()
            self.hosts.wait_no_container(node)
        if volumes:
            problem = remove_volume(self.hosts, self.volumes, node, self.topology.cluster, image_ran,
                                    self.topology.metadata.coordinator.image)
            if problem:
                with self._lock:
                    self._unremoved.append(problem)

    def teardown(self, volumes: bool) -> None:
        """With volumes: the cluster's secrets, network and volumes (teardown.py); only this instance's."""
        if self.ha.etcd:
            self._unremoved += self.ha.teardown(volumes)
        if volumes:
            remove_cluster(self.client, self.ctx, self.hosts, self.volumes, self.network, self._unremoved)

    def kill(self, node: Node) -> None:
        """SIGKILL the node's task container on this engine (tests simulate a crash with it)."""
        for container in self.hosts.local_containers(node):
            with docker_errors(f"kill {container.name}"):
                container.kill()

    # -- information ------------------------------------------------------------------------------
    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        service = docker_spec.container_name(self.topology.cluster, node.name)
        group = self._groups.get(node.name)
        if group is not None:  # under HA: the members' services run, and Patroni says the group is led
            return node_readiness(self, self.ctx, node, max(timeout, 180.0), f"as Swarm service {service}, ",
                                  tls=self.tls_covers(node), alive=lambda: self.ha.running(group), interval=0.5,
                                  also=group_ready(self.ctx, self.ha.addressed(group)))
        return node_readiness(self, self.ctx, node, timeout, f"as Swarm service {service}, ",
                              tls=self.tls_covers(node), alive=lambda: self.services.alive(node),
                              interval=0.3, hint=f" and `docker service ps {service}`",
                              also=lambda: self.services.task_running(node))

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        if node.name in self._groups:
            return self.ha.logs(self._groups[node.name], tail)
        service = self._find(node)
        if service is None:
            return []
        with docker_errors(f"read the logs of {service.name}"):
            raw = b"".join(service.logs(stdout=True, stderr=True, tail=tail if tail else "all"))
        lines = raw.decode(errors="replace").splitlines()
        tasks = ClusterServices.tasks(service)
        if tasks and tasks[0]["Status"].get("Err"):
            lines.append(f"[swarm] task {tasks[0]['Status']['State']}: {tasks[0]['Status']['Err']}")
        return lines

    def endpoint(self, node: Node) -> Endpoint:
        pin = self.ha.pin(node.name) if node.name in self._groups else \
            self.hosts.pin(node.name) or self.hosts.planned(node.name)
        host = pin.addr if pin else node.host
        return Endpoint(node.name, node.role.value, node.engine.value, self.name, host, node.port,
                        docker_spec.container_name(self.topology.cluster, node.name),
                        docker_spec.CONTAINER_PORT[node.engine], node.database,
                        sspec.SECRETS_DIR if self.tls_covers(node) else None)

    def source_address(self, node: Node) -> str:
        """The cluster's own overlay subnet, not one task's address: Swarm gives a replaced task (a crash, a
        failed health check) a new address, and pg_hba must admit it at once, without `up`. The network is
        not attachable, so only this cluster's services are on it; TLS and passwords still apply."""
        return self.overlay_subnet()

    def overlay_subnet(self) -> str:
        self._ensure_network()
        with docker_errors(f"inspect network {self.network}"):
            nets = owner.named_networks(self.client, self.network)
            attrs = self.client.api.inspect_network(nets[0].id) if nets else {}
        subnets = [c["Subnet"] for c in (attrs.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
        if not subnets:
            raise BackendError(f"network {self.network} has no subnet yet",
                               hint="run `streamctl status`, then `streamctl up` again")
        return str(subnets[0])

    def psql_argv(self, node: Node, user: str, password: str, database: str,
                  args: list[str]) -> tuple[list[str], dict[str, str]]:
        exe = shutil.which("psql")
        if exe is None:
            raise PreflightError("psql is not installed here (on Swarm it connects to the published port)",
                                 hint="install the PostgreSQL client, or use `streamctl url NODE`")
        ep = self.endpoint(node)
        host, port = ep.host, str(ep.port)
        env = {"PGPASSWORD": password}
        group = self._groups.get(node.name)
        if group is not None:  # under HA: every member at its host; libpq keeps the one that leads
            members = self.ha.addressed(group)
            host, port = ",".join(m.node.host for m in members), ",".join(str(m.port) for m in members)
            env["PGTARGETSESSIONATTRS"] = "primary"
        if self.tls_covers(node):  # psql verifies the server against streamctl's copy of the CA
            env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=self.ctx.ca_path())
        return ([exe, "-h", host, "-p", port, "-U", user, "-d", database, *args], env)

