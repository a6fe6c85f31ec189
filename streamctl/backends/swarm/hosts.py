"""The Swarm's hosts as the backend sees them: the manager check, pins kept in the state, placement.

Pins live in state.json (`swarm_pins`) and in each service's label, so a lost state directory is rebuilt
from the services. A pinned host that left, is down or is drained stops `up` before any change.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import suppress
from typing import Any

from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm.placement import Pin, Unsatisfiable, Want, assign
from streamctl.config import constraints as cons
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, PreflightError, ReadinessTimeout
from streamctl.readiness import Readiness

PINS = "swarm_pins"
STATE_LOCK = threading.Lock()  # every read-modify-write of state.json by the Swarm backend's threads


def _engine() -> str:
    return os.environ.get("DOCKER_HOST") or "the local Docker socket"


class SwarmHosts:
    def __init__(self, client: Any, ctx: ClusterContext) -> None:
        self.client = client
        self.ctx = ctx
        self._planned: dict[str, Pin] = {}
        self._nodes: dict[str, dict[str, Any]] | None = None
        self._local_id: str | None = None

    # -- the swarm --------------------------------------------------------------------------------
    def require_manager(self) -> None:
        with docker_errors("read the engine's Swarm status"):
            info = self.client.info()
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            raise PreflightError(f"the Docker engine at {_engine()} is not part of a Swarm "
                                 f"(state: {swarm.get('LocalNodeState') or 'unknown'})",
                                 hint="run `docker swarm init` there, or point DOCKER_HOST at a Swarm manager")
        if not swarm.get("ControlAvailable"):
            raise PreflightError(f"the Docker engine at {_engine()} is a Swarm worker, not a manager",
                                 hint="point DOCKER_HOST at a manager (`docker node ls` there lists them)")
        self._local_id = str(swarm.get("NodeID", ""))

    @property
    def local_id(self) -> str:
        """The Swarm node id of the engine we talk to (its volumes and containers are the ones we reach)."""
        if self._local_id is None:
            with docker_errors("read the engine's Swarm status"):
                self._local_id = str((self.client.info().get("Swarm") or {}).get("NodeID", ""))
        return self._local_id

    def nodes(self, refresh: bool = False) -> dict[str, dict[str, Any]]:
        if self._nodes is None or refresh:
            with docker_errors("list the Swarm's nodes"):
                self._nodes = {n.id: n.attrs for n in self.client.nodes.list()}
        return self._nodes

    @staticmethod
    def facts(attrs: dict[str, Any]) -> cons.HostFacts:
        desc = attrs.get("Description") or {}
        return cons.HostFacts(id=attrs["ID"], hostname=desc.get("Hostname", ""),
                              role=attrs.get("Spec", {}).get("Role", "worker"),
                              os=desc.get("Platform", {}).get("OS", "linux"),
                              arch=desc.get("Platform", {}).get("Architecture", "x86_64"),
                              labels=dict(attrs.get("Spec", {}).get("Labels") or {}),
                              engine_labels=dict(desc.get("Engine", {}).get("Labels") or {}))

    @staticmethod
    def address(attrs: dict[str, Any]) -> str:
        """Where the host answers: its Swarm address (a manager may report 0.0.0.0: then its manager address)."""
        addr = str(attrs.get("Status", {}).get("Addr") or "")
        if addr in ("", "0.0.0.0"):
            addr = str((attrs.get("ManagerStatus") or {}).get("Addr", "")).rsplit(":", 1)[0]
        return addr or "127.0.0.1"

    def pin_of(self, attrs: dict[str, Any]) -> Pin:
        return Pin(attrs["ID"], self.facts(attrs).hostname, self.address(attrs))

    # -- pins -------------------------------------------------------------------------------------
    def pin(self, node: str) -> Pin | None:
        raw = self.ctx.store.read().get(PINS, {}).get(node)
        return Pin(**raw) if raw else None

    def _record(self, node: str, pin: Pin | None) -> None:
        with STATE_LOCK:
            data = self.ctx.store.read()
            pins = dict(data.get(PINS, {}))
            if pin is None:
                pins.pop(node, None)
            else:
                pins[node] = {"id": pin.id, "hostname": pin.hostname, "addr": pin.addr}
            self.ctx.store.update(**{PINS: pins})

    def record(self, name: str, pin: Pin) -> None:
        """Pin what is not a node of its own (an HA member, an etcd member) to the host chosen for it."""
        self._record(name, pin)

    def adopt(self, node: str, service: Any) -> None:
        """A service exists but the state lost its pin: take it back from the service's label."""
        host = (service.attrs["Spec"].get("Labels") or {}).get("io.streamctl.swarm.host")
        attrs = self.nodes().get(host or "")
        if host and self.pin(node) is None:
            self._record(node, self.pin_of(attrs) if attrs else Pin(host, "unknown host", ""))

    def forget(self, node: str) -> None:
        self._planned.pop(node, None)
        self._record(node, None)

    def unavailable(self, pin: Pin) -> str | None:
        """Why a pinned host cannot run its node now, or None when it can."""
        attrs = self.nodes().get(pin.id)
        if attrs is None:
            return f"{pin.describe()}, which has left the swarm"
        state = attrs.get("Status", {}).get("State")
        availability = attrs.get("Spec", {}).get("Availability")
        if state != "ready":
            return f"{pin.describe()}, which is {state}"
        if availability != "active":
            return f"{pin.describe()}, which is set to {availability}"
        return None

    def check_pins(self, nodes: list[Node]) -> None:
        problems = []
        for node in nodes:
            pin = self.pin(node.name)
            why = self.unavailable(pin) if pin else None
            if why:
                problems.append(f"{node.name} is pinned to {why}; its data volume lives there")
        if problems:
            raise PreflightError("nodes are pinned to Swarm hosts that cannot run them; nothing was changed",
                                 details=problems,
                                 hint="bring the host back (or `docker node update --availability active`); "
                                      "data never moves to another host on its own")

    def check_pinned_placement(self, nodes: list[Node]) -> None:
        """A `placement` change that excludes a node's pinned host is refused: the node would have to move,
        and its data cannot (nothing is moved without an explicit command)."""
        t = self.ctx.topology
        problems = []
        for node in nodes:
            pin = self.pin(node.name)
            attrs = self.nodes().get(pin.id) if pin else None
            if pin and attrs and not cons.matches(self.facts(attrs), cons.for_node(t, node)):
                rules = " and ".join(str(c) for c in cons.for_node(t, node))
                problems.append(f"placement: {node.name} is pinned to {pin.describe()}, which does not satisfy "
                                f"{rules}; its data volume lives there")
        if problems:
            raise PreflightError("the placement excludes hosts that nodes are pinned to; nothing was changed",
                                 details=problems, hint="keep the pinned hosts in the node's placement (data "
                                                        "never moves on its own)")

    def check_ports(self, nodes: list[Node], services: dict[str, Any]) -> None:
        """Before any change: a port a node is about to publish (a new node, or a new port) is free on the
        host it lands on; whatever answers there (a container, a process, another service) is named."""
        busy = []
        for node in nodes:
            service = services.get(node.name)
            if service is not None and node.port in _published(service):
                continue
            pin = self.pin(node.name) or self.planned(node.name)
            if pin and pin.addr and _answers(pin.addr, node.port):
                busy.append(f"{node.yaml_path}.port: {node.port} is already taken on {pin.describe()}, "
                            f"where {node.name} is pinned")
        if busy:
            raise PreflightError("ports needed by the topology are taken on their Swarm hosts; nothing was "
                                 "changed", details=busy, hint="free the port on that host, or change the port "
                                                               "in the topology")

    # -- placement --------------------------------------------------------------------------------
    def plan(self, nodes: list[Node]) -> None:
        """Choose a host for each node not placed yet; an unsatisfiable constraint is a PreflightError."""
        if not nodes:
            return
        t = self.ctx.topology
        usable = [a for a in self.nodes(refresh=True).values() if a.get("Status", {}).get("State") == "ready"
                  and a.get("Spec", {}).get("Availability") == "active"]
        roles = {n.name: n.role.value for n in t.nodes()}
        placed = {name: (raw["id"], roles.get(name, "")) for name, raw in
                  self.ctx.store.read().get(PINS, {}).items()}
        wants = [Want(n.name, n.role.value, cons.for_node(t, n)) for n in nodes]
        try:
            chosen = assign(wants, [self.facts(a) for a in usable], placed, t.placement.spread)
        except Unsatisfiable as exc:
            raise PreflightError("the placement cannot be satisfied by this Swarm; nothing was created",
                                 details=exc.problems,
                                 hint="label a host (`docker node update --label-add KEY=VALUE HOST`) or "
                                      "change `placement` in the topology") from None
        by_id = {a["ID"]: a for a in usable}
        self._planned.update({name: self.pin_of(by_id[h.id]) for name, h in chosen.items()})

    def planned(self, node: str) -> Pin | None:
        return self._planned.get(node)

    def place(self, node: Node) -> Pin:
        """The planned host of a new node, recorded as its pin before its service exists."""
        if node.name not in self._planned:
            self.plan([node])
        pin = self._planned[node.name]
        self._record(node.name, pin)
        return pin

    # -- clean-up ---------------------------------------------------------------------------------
    def local_containers(self, node: Node) -> list[Any]:
        name = docker_spec.container_name(self.ctx.topology.cluster, node.name)
        with docker_errors(f"list the containers of {name}"):
            return list(self.client.containers.list(
                all=True, filters={"label": f"com.docker.swarm.service.name={name}"}))

    def wait_no_task(self, service: Any, timeout: float = 90.0) -> None:
        def stopped() -> bool:
            return not [t for t in service.tasks() if t["Status"]["State"] in ("running", "starting",
                                                                            "preparing", "assigned")]
        Readiness(f"{service.name} to stop", stopped, timeout, interval=0.3).wait()

    def wait_no_container(self, node: Node, timeout: float = 90.0) -> None:
        pin = self.pin(node.name)
        if pin is None or pin.id == self.local_id:
            Readiness(f"the containers of {node.name} to go", lambda: not self.local_containers(node), timeout,
                      interval=0.3).wait()

    def remove_network(self, net: Any) -> None:
        """An overlay network refuses removal while a removed task's endpoint is still detaching."""
        from docker.errors import APIError, NotFound

        def gone() -> bool:
            try:
                net.remove()
            except NotFound:
                return True
            except APIError as exc:
                if "in use" in str(exc) or "active endpoints" in str(exc):
                    return False
                raise BackendError(f"docker: remove network {net.name} failed: {exc}") from exc
            return True
        Readiness(f"network {net.name} to be released", gone, 60.0, interval=0.5).wait()
        # The manager lists a removed overlay network a moment longer, and an `up` meanwhile would find it,
        # not create it, and have its services refused ("network not found"): gone means no longer listed.
        with suppress(ReadinessTimeout):
            Readiness(f"network {net.name} to leave the manager's list",
                      lambda: all(n.id != net.id for n in net.client.networks.list(names=[net.name])),
                      60.0, interval=0.5).wait()


def _published(service: Any) -> set[int]:
    ports = (service.attrs.get("Spec", {}).get("EndpointSpec") or {}).get("Ports") or []
    return {int(p["PublishedPort"]) for p in ports if p.get("PublishedPort")}


def _answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0
