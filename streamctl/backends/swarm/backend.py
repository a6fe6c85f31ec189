"""Swarm backend: every node is a one-replica Swarm service, pinned to the host that holds its volume.

Services share a private (not attachable) overlay network per cluster and reach each other by service name (DNS
round-robin endpoints: no IPVS needed); streamctl reaches them on ports published in host mode on the
host running the task. Passwords travel as Docker secrets. Driven through the manager at DOCKER_HOST.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from typing import Any

from streamctl.backends.base import Action, NodeState, Notify, Observation, fingerprint
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import connect, docker_errors
from streamctl.backends.docker.images import ImagePuller
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.hosts import SwarmHosts
from streamctl.backends.swarm.placement import Pin
from streamctl.backends.swarm.users import ImageUsers
from streamctl.backends.swarm.volumes import Leftover, SwarmVolumes
from streamctl.config.checks import swarm_bind_errors
from streamctl.config.model import Node, Topology
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, PreflightError, RefusedError, StreamctlError
from streamctl.events import Progress
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR
from streamctl.pgconn import write_data_file
from streamctl.readiness import Readiness, node_probe
from streamctl.state import Endpoint
from streamctl.tls.material import NodeTls, node_names

NS = 1_000_000_000  # the Engine API takes durations in nanoseconds


class SwarmBackend:
    """Runs each node as a Swarm service; `down` scales it to zero (the service, pin and volume stay)."""

    name = "swarm"

    def __init__(self, ctx: ClusterContext, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.topology: Topology = ctx.topology
        self.progress: Progress = progress or (lambda _node, _message: None)  # the library never prints
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()  # network, secrets and state writes must not race between node threads
        self._hosts: SwarmHosts | None = None
        self._users: ImageUsers | None = None
        self._unremoved: list[str] = []  # volumes `remove` could not delete (recorded; teardown reports them)

    @property
    def users(self) -> ImageUsers:
        if self._users is None:
            self._users = ImageUsers(self.client)
        return self._users

    # -- connection -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The manager's client; every command learns first, in one clear error, when it is not a manager."""
        with self._client_lock:
            if self._client is None:
                client = connect()
                hosts = SwarmHosts(client, self.ctx)
                hosts.require_manager()
                self._client, self._hosts = client, hosts
        return self._client

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

    def preflight(self, nodes: list[Node]) -> None:
        """Before any change: a reachable manager, ports it can publish, no foreign services, pinned hosts
        present and available, and a host satisfying the placement of every node still to be created."""
        bind = swarm_bind_errors(self.topology)
        if bind:
            raise PreflightError("the topology binds ports to one address, which Swarm cannot do",
                                 details=bind, hint="set `bind: 0.0.0.0` in the topology")
        services = {n.name: self._find(n) for n in nodes}
        for name, service in services.items():
            if service is not None:
                self.hosts.adopt(name, service)
        placed = [n for n in nodes if services[n.name] is not None or self.hosts.pin(n.name)]
        self.hosts.check_pins(placed)
        self.hosts.check_pinned_placement(placed)
        new = [n for n in nodes if services[n.name] is None and self.hosts.pin(n.name) is None]
        self._refuse_stale_volumes(new, retry=False)
        self.hosts.plan(new)
        self.hosts.check_ports(nodes, services)
        self._check_majors(nodes, services)

    def unreachable(self, nodes: list[Node]) -> dict[str, str]:
        """Nodes pinned to a host that cannot run them now (left, down, drained, paused): `up` converges
        the others and reports these; nothing is ever moved to another host."""
        out = {}
        for node in nodes:
            pin = self.hosts.pin(node.name)
            why = self.hosts.unavailable(pin) if pin else None
            if why:
                out[node.name] = f"{node.name} is pinned to {why}; its data volume lives there"
        return out

    def _refuse_stale_volumes(self, new: list[Node], retry: bool) -> None:
        """A new node never starts on a volume streamctl could not remove earlier (recorded): with retry
        (`up`, past its dry run), every recorded volume whose host answers is removed first."""
        if retry:
            for left in self.volumes.leftovers():
                if not self.hosts.unavailable(left.host):
                    self.volumes.remove(left)
        stale = [f"{n.name}: {left.describe()} was not removed yet" for n in new
                 for left in self.volumes.of_node(n.name) if self._lands_on(n, left.host.id)]
        if stale:
            raise PreflightError("a new node would start on a volume left from an earlier one; nothing was created",
                                 details=stale, hint="bring the host back and run `streamctl up` again (it removes "
                                                     "the volume first), or remove the volume on that host")

    def _lands_on(self, node: Node, host: str) -> bool:
        """Whether a new node would run on `host` (pinned or planned there; not planned yet: it may)."""
        pin = self.hosts.pin(node.name) or self.hosts.planned(node.name)
        return pin is None or pin.id == host

    def _check_majors(self, nodes: list[Node], services: dict[str, Any]) -> None:
        """A populated PostgreSQL node whose image changes to another major version is refused, as on Docker:
        the running server says which major its data is (the volume may be on another host)."""
        from streamctl.backends.docker.prepare import image_major

        refused = []
        for node in nodes:
            service = services.get(node.name)
            if service is None or node.engine.value != "postgres":
                continue
            image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image", "").split("@")[0]
            if image == node.image:
                continue
            want = image_major(self.client, node.image)
            have = self._data_major(node)
            if want and have and want != have:
                pin = self.hosts.pin(node.name)
                refused.append(f"{node.yaml_path}.image: {node.name} on {pin.describe() if pin else 'its host'} "
                               f"holds PostgreSQL {have} data; {node.image} is PostgreSQL {want}")
        if refused:
            raise RefusedError("refused to change nodes to another PostgreSQL major version: a server does not "
                                 "start on another major version's data; nothing was changed", details=refused,
                                 hint="keep the image's major version, or dump and restore into a new cluster")

    def _data_major(self, node: Node) -> str | None:
        try:
            with self.ctx.pg_connect(node.name, "postgres") as conn:
                row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        except Exception:  # noqa: BLE001 - a node that does not answer is judged by its image elsewhere
            return None
        return str(row[0]) if row else None

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Images present on the manager for the nodes it will run, before any service changes; the other
        hosts pull (or hold) their own, and a task they cannot start shows as rejected in readiness."""
        from streamctl.backends.docker.prepare import ensure_images

        self._refuse_stale_volumes([node for node, action in changes if action is Action.CREATE], retry=True)
        local = self.hosts.local_id
        here = [(node, action) for node, action in changes
                if (pin := self.hosts.pin(node.name) or self.hosts.planned(node.name)) and pin.id == local]
        if here:
            ensure_images(ImagePuller(self.client, notify), here)

    # -- definitions ------------------------------------------------------------------------------
    def spec(self, node: Node, issue: bool = False) -> sspec.ServiceSpec:
        """The node's service; with issue=True its certificate is (re)issued first (only `apply` does)."""
        s = sspec.service_spec(self.topology, node, self.ctx.store.known_secrets(self.topology),
                               self._tls(node, issue))
        labels = {**s.container.labels, **self.ctx.ownership.labels()}  # service, containers and volume
        return replace(s, container=docker_spec.replace_spec(s.container, labels=labels))

    def tls_names(self, node: Node) -> set[str]:
        """What the certificate covers: the node and service names, loopback, and the address of the host
        its port is published on (the pinned or planned Swarm host)."""
        pin = self.hosts.pin(node.name) or self.hosts.planned(node.name)
        return node_names(self.topology, node) | ({pin.addr} if pin and pin.addr else set())

    def _tls(self, node: Node, issue: bool) -> NodeTls | None:
        if not self.ctx.managed_tls(node.name):
            return None
        if issue:
            return self.ctx.tls.ensure(node.name, self.tls_names(node))
        # Before issuing, a stand-in whose fingerprint differs from any real one: the plan says "update".
        return (self.ctx.tls.current(node.name, self.tls_names(node))
                or NodeTls(b"", b"to be issued", b""))

    def desired_fingerprint(self, node: Node) -> str:
        return fingerprint(self.spec(node).definition())

    # -- observation ------------------------------------------------------------------------------
    def _find(self, node: Node) -> Any | None:
        from docker.errors import NotFound

        name = docker_spec.container_name(self.topology.cluster, node.name)
        with docker_errors(f"inspect service {name}"):
            try:
                service = self.client.services.get(name)
            except NotFound:
                return None
        labels = service.attrs.get("Spec", {}).get("Labels") or {}
        if (labels.get(docker_spec.LABEL_CLUSTER), labels.get(docker_spec.LABEL_NODE)) != (
                self.topology.cluster, node.name):
            raise PreflightError(f"a Swarm service named {name} exists but was not created by streamctl for "
                                 f"cluster {self.topology.cluster}",
                                 hint=f"remove it (docker service rm {name}) or rename the cluster")
        # Raises when another state directory's instance owns it: never adopted, updated or removed.
        self.ctx.ownership.check(f"service {name}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR))
        return service

    def _tasks(self, service: Any) -> list[dict[str, Any]]:
        with docker_errors(f"list the tasks of {service.name}"):
            tasks = service.tasks()
        return sorted(tasks, key=lambda t: t.get("Version", {}).get("Index", 0), reverse=True)

    def observe(self, node: Node) -> Observation:
        obs = self._observe(node)
        left = self.volumes.of_node(node.name)
        if not left:
            return obs
        note = "; ".join(f"{x.describe()} still to be removed" for x in left)
        return replace(obs, detail=f"{obs.detail}; {note}" if obs.detail else note)

    def leftover_volumes(self) -> list[tuple[str, str]]:
        """(node, description) of every volume recorded as not removed yet (`status` lists them)."""
        return [(x.node, x.describe()) for x in self.volumes.leftovers()]

    def _observe(self, node: Node) -> Observation:
        service = self._find(node)
        pin = self.hosts.pin(node.name)
        gone = self.hosts.unavailable(pin) if pin else None
        if service is None:
            self._check_volume(node)
            return Observation(node.name, NodeState.MISSING, None, f"pinned to {gone}" if gone else "")
        labels = service.attrs["Spec"].get("Labels") or {}
        fp = labels.get(docker_spec.LABEL_FINGERPRINT)
        found = labels.get(LABEL_INSTANCE)
        # Taken over (legacy or --adopt): a rolling update relabels it on the same host, volume kept.
        takeover = "" if self.ctx.ownership.check(service.name, found, labels.get(LABEL_STATE_DIR)) else (
            f"instance {found}" if found else "a service without an instance id")
        where = pin.describe() if pin else "an unknown host"
        if gone:
            return Observation(node.name, NodeState.STOPPED, fp, f"pinned to {gone}; nothing was moved", takeover)
        replicas = service.attrs["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 0)
        if replicas == 0:
            return Observation(node.name, NodeState.STOPPED, fp, f"scaled to 0 on {where}", takeover)
        tasks = self._tasks(service)
        state = tasks[0]["Status"]["State"] if tasks else "no task yet"
        return Observation(node.name, NodeState.RUNNING, fp, f"task {state} on {where}", takeover)

    def _check_volume(self, node: Node) -> None:
        """A volume left without its service (on this engine's host): refused when another instance made it."""
        from docker.errors import NotFound

        name = docker_spec.volume_name(self.topology.cluster, node.name)
        with docker_errors(f"inspect volume {name}"):
            try:
                labels = self.client.api.inspect_volume(name).get("Labels") or {}
            except NotFound:
                return
        self.ctx.ownership.check(f"volume {name}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR))

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, node: Node, action: Action) -> None:
        if action is Action.NOOP:
            return
        service = self._find(node)
        if action is Action.START and service is not None:
            with docker_errors(f"scale {service.name} to 1"):
                service.scale(1)
            return
        pin = self.hosts.pin(node.name) or self.hosts.place(node)
        spec = self.spec(node, issue=True)
        kwargs = self._service_kwargs(node, spec, pin)
        if service is not None:  # RECREATE: a rolling `service update` on the same host keeps the volume
            with docker_errors(f"update service {spec.name}"):
                service.update(**kwargs)
            return
        self._ensure_network()
        with docker_errors(f"create service {spec.name}"):
            self.client.services.create(**kwargs)

    def _service_kwargs(self, node: Node, spec: sspec.ServiceSpec, pin: Pin) -> dict[str, Any]:
        from docker.types import EndpointSpec, Healthcheck, Mount, RestartPolicy, SecretReference, ServiceMode

        c = spec.container
        refs = []
        for s in spec.secrets:
            uid, gid = self.users.ids(c.image, s.owner) if s.owner else (0, 0)
            refs.append(SecretReference(self._ensure_secret(s), s.name, filename=s.target, uid=str(uid),
                                        gid=str(gid), mode=s.mode))
        mounts = [Mount(c.mount, c.volume, type="volume", labels=dict(c.labels))]
        if c.shm_size:
            mounts.append(Mount("/dev/shm", None, type="tmpfs", tmpfs_size=_bytes(c.shm_size)))
        labels = {**c.labels, docker_spec.LABEL_FINGERPRINT: fingerprint(spec.definition()),
                  sspec.LABEL_HOST: pin.id}
        health = Healthcheck(test=spec.healthcheck, retries=sspec.HEALTH_RETRIES,
                             **{k: v * NS for k, v in sspec.HEALTH_SECONDS.items()})
        return {
            "image": c.image, "name": spec.name, "args": spec.command or None, "env": spec.environment,
            "hostname": node.name, "labels": labels, "container_labels": dict(c.labels),
            "mounts": mounts, "secrets": refs, "healthcheck": health, "networks": [self.network],
            "stop_signal": c.stop_signal, "stop_grace_period": 60 * NS,
            "mode": ServiceMode("replicated", replicas=1),
            "restart_policy": RestartPolicy(condition="any", delay=2 * NS, max_attempts=0),
            "constraints": [*spec.constraints, f"node.id == {pin.id}"],
            "endpoint_spec": EndpointSpec(mode="dnsrr", ports={c.host_port: (c.container_port, "tcp", "host")}),
        }

    def _ensure_secret(self, secret: sspec.SecretFile) -> str:
        with self._lock, docker_errors(f"create secret {secret.name}"):
            found = self.client.secrets.list(filters={"name": secret.name})
            exact = [s for s in found if s.name == secret.name]
            if exact:
                return str(exact[0].id)
            made = self.client.secrets.create(name=secret.name, data=secret.data.encode(),
                                              labels={docker_spec.LABEL_CLUSTER: self.topology.cluster,
                                                      **self.ctx.ownership.labels()})
            return str(made.id)

    def _ensure_network(self) -> None:
        with self._lock, docker_errors(f"create network {self.network}"):
            if not [n for n in self.client.networks.list(names=[self.network]) if n.name == self.network]:
                # Not attachable: no standalone container joins it, so its subnet admits only the cluster.
                self.client.networks.create(self.network, driver="overlay", attachable=False, scope="swarm",
                                            labels={docker_spec.LABEL_CLUSTER: self.topology.cluster,
                                                    **self.ctx.ownership.labels()})

    def stop(self, node: Node) -> None:
        service = self._find(node)
        if service is not None:
            with docker_errors(f"scale {service.name} to 0"):
                service.scale(0)
            self.hosts.wait_no_task(service)

    def remove(self, node: Node, volumes: bool) -> None:
        service = self._find(node)
        if service is not None:
            with docker_errors(f"remove service {service.name}"):
                service.remove()
            self.hosts.wait_no_container(node)
        if volumes:
            name = docker_spec.volume_name(self.topology.cluster, node.name)
            recorded = {x.volume: x for x in self.volumes.leftovers()}
            pin = self.hosts.pin(node.name) or (recorded[name].host if name in recorded else
                                                 Pin(self.hosts.local_id, "this engine", ""))
            left = Leftover(name, node.name, pin, node.image)
            why = self.hosts.unavailable(pin) if pin.id != self.hosts.local_id else None
            if why:
                self.volumes.remove_later(left)
            else:
                why = self.volumes.remove(left)
            if why:
                with self._lock:
                    self._unremoved.append(f"{left.describe()}: {why}")
            self.hosts.forget(node.name)

    def teardown(self, volumes: bool) -> None:
        """With volumes: the cluster's secrets, network and volumes (on every host; the ones that cannot go
        now stay recorded and make this fail, so the state that records them is kept); only this instance's
        (another state directory's of the same cluster name stay)."""
        if not volumes:
            return
        mine = self.ctx.ownership.mine
        flt = {"label": f"{docker_spec.LABEL_CLUSTER}={self.topology.cluster}"}
        with docker_errors("remove the cluster's services and secrets"):
            for service in self.client.services.list(filters=flt):
                if mine((service.attrs.get("Spec", {}).get("Labels") or {}).get(LABEL_INSTANCE)):
                    service.remove()
            for secret in self.client.secrets.list(filters=flt):
                if mine((secret.attrs.get("Spec", {}).get("Labels") or {}).get(LABEL_INSTANCE)):
                    secret.remove()
        tried = {u.split(" ", 2)[1] for u in self._unremoved}
        for left in self.volumes.leftovers():  # recorded by an earlier run: once more
            if left.volume not in tried:
                why = self.hosts.unavailable(left.host) or self.volumes.remove(left)
                if why:
                    self._unremoved.append(f"{left.describe()}: {why}")
        problems = list(self._unremoved) if self.volumes.leftovers() else []
        try:
            with docker_errors(f"remove network {self.network}"):
                for net in self.client.networks.list(names=[self.network]):
                    labels = net.attrs.get("Labels") or {}
                    if labels.get(docker_spec.LABEL_CLUSTER) == self.topology.cluster and mine(
                            labels.get(LABEL_INSTANCE)):
                        self.hosts.remove_network(net)
        except StreamctlError as exc:
            if not problems:
                raise
            problems.append(f"network {self.network}: {exc.message}")  # a lost host's tasks may hold it
        if problems:
            raise BackendError("the cluster is removed, but some volumes could not be removed; they stay recorded",
                               details=problems, hint="`streamctl status` lists them; the next `streamctl up` "
                                                      "or `down --volumes` removes them once their host answers")

    def kill(self, node: Node) -> None:
        """SIGKILL the node's task container on this engine (tests simulate a crash with it)."""
        for container in self.hosts.local_containers(node):
            with docker_errors(f"kill {container.name}"):
                container.kill()

    # -- information ------------------------------------------------------------------------------
    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        ep = self.endpoint(node)
        ca = self.ctx.ca_path() if self.ctx.managed_tls(node.name) else None
        answers = node_probe(node, ep.host, ep.port, self.topology.pg_user,
                             self.ctx.store.known_secrets(self.topology), ca,
                             self.ctx.store.login_fallbacks(self.topology))

        def probe() -> bool:
            return answers() and self._task_running(node)

        return Readiness(f"{node.name} ({node.engine.value} as Swarm service "
                         f"{docker_spec.container_name(self.topology.cluster, node.name)}, {ep.host}:{ep.port})",
                         probe, timeout, interval=0.3, logs=lambda: self.logs(node, 20),
                         hint=f"see `streamctl logs {node.name}` and `docker service ps "
                              f"{docker_spec.container_name(self.topology.cluster, node.name)}`",
                         alive=lambda: self._alive(node))

    def _task_running(self, node: Node) -> bool:
        """Swarm's own verdict: the task passed its health check, so its name resolves on the overlay."""
        service = self._find(node)
        tasks = [t for t in self._tasks(service) if t.get("DesiredState") == "running"] if service else []
        if not any(t["Status"]["State"] == "running" for t in tasks):
            state = tasks[0]["Status"]["State"] if tasks else "no task"
            raise BackendError(f"task {state}: Swarm adds it to the overlay's DNS once its health check passes")
        return True

    def _alive(self, node: Node) -> bool:
        """False only when Swarm refuses the task outright (no such image on the host, for instance)."""
        service = self._find(node)
        if service is None:
            return False
        tasks = self._tasks(service)
        return not tasks or tasks[0]["Status"]["State"] != "rejected"

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        service = self._find(node)
        if service is None:
            return []
        with docker_errors(f"read the logs of {service.name}"):
            raw = b"".join(service.logs(stdout=True, stderr=True, tail=tail if tail else "all"))
        lines = raw.decode(errors="replace").splitlines()
        tasks = self._tasks(service)
        if tasks and tasks[0]["Status"].get("Err"):
            lines.append(f"[swarm] task {tasks[0]['Status']['State']}: {tasks[0]['Status']['Err']}")
        return lines

    def endpoint(self, node: Node) -> Endpoint:
        pin = self.hosts.pin(node.name) or self.hosts.planned(node.name)
        host = pin.addr if pin else node.host
        return Endpoint(node.name, node.role.value, node.engine.value, self.name, host, node.port,
                        docker_spec.container_name(self.topology.cluster, node.name),
                        docker_spec.CONTAINER_PORT[node.engine], node.database,
                        sspec.SECRETS_DIR if self.ctx.managed_tls(node.name) else None)

    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        """Through SQL (COPY ... TO a server file, as the server's user): the task may run on any host."""
        with self.ctx.pg_connect(node.name, "postgres") as conn:
            write_data_file(conn, node.name, name, content)

    def source_address(self, node: Node) -> str:
        """The cluster's own overlay subnet, not one task's address: Swarm gives a replaced task (a crash, a
        failed health check) a new address, and pg_hba must admit it at once, without `up`. The network is
        not attachable, so only this cluster's services are on it; TLS and passwords still apply."""
        return self.overlay_subnet()

    def overlay_subnet(self) -> str:
        self._ensure_network()
        with docker_errors(f"inspect network {self.network}"):
            nets = [n for n in self.client.networks.list(names=[self.network]) if n.name == self.network]
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
        env = {"PGPASSWORD": password}
        if self.ctx.managed_tls(node.name):  # psql verifies the server against streamctl's copy of the CA
            env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=self.ctx.ca_path())
        return ([exe, "-h", ep.host, "-p", str(ep.port), "-U", user, "-d", database, *args], env)


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = size[-1].lower()
    return int(size[:-1]) * units[unit] if unit in units else int(size)

