"""Docker backend: every node is a container of its pinned image, on one bridge network per cluster.

Containers, the network and the named volumes carry labels naming the cluster (and node/role), so a
cluster's resources can always be found and removed by label, whatever happened to the state directory.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from streamctl.backends.base import Action, NodeState, Notify, Observation, fingerprint, group_ready, node_readiness
from streamctl.backends.docker import ha_convert, owner, spec
from streamctl.backends.docker.container import create_container
from streamctl.backends.docker.engine import EngineBackend
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import UserIds, put_files
from streamctl.backends.docker.ha import DockerHa
from streamctl.backends.docker.ha_release import release
from streamctl.backends.docker.images import ImagePuller
from streamctl.backends.docker.template import LABEL_TEMPLATE, VolumeTemplates
from streamctl.config.members import Group, ha_groups, may_lead
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.engines.tls import CA
from streamctl.errors import BackendError, PreflightError
from streamctl.events import Progress
from streamctl.ownership import LABEL_INSTANCE
from streamctl.readiness import Readiness
from streamctl.state import Endpoint


class DockerBackend(EngineBackend):
    """Runs each node as a container; the CLI reaches it on its published port, nodes by name."""

    name = "docker"

    def __init__(self, ctx: ClusterContext, progress: Progress | None = None) -> None:
        super().__init__(ctx, progress)
        self._puller: ImagePuller | None = None
        self._volume_templates: VolumeTemplates | None = None
        self._user_ids = UserIds()  # image -> its users' ids, for the files copied into containers
        self._groups: dict[str, Group] = {g.node.name: g for g in ha_groups(self.topology)}
        self.ha = DockerHa(self, self._groups)  # every group under HA: a container per member (ha.py)

    # -- connection -------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        return self.client.api

    @property
    def network(self) -> str:
        return spec.network_name(self.topology.cluster)

    def preflight(self, nodes: list[Node]) -> None:
        _ = self.client  # raises when no engine answers
        for node in nodes:
            self._find(node)  # raises when a foreign container holds the name
            refusal = self.ha.mode_change(node, node.name in self._groups) if node.is_postgres else None
            if refusal is not None:
                raise refusal
        owner.claim_network(self.client, self.network, self.topology.cluster, self.ctx.ownership, relabel=False)

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Images present and PostgreSQL major versions compatible, before any container changes."""
        from streamctl.backends.docker.prepare import check_major_versions, ensure_images

        if not changes:
            return
        # Nodes being taken over are recreated on the network relabelled with our instance id.
        owner.claim_network(self.client, self.network, self.topology.cluster, self.ctx.ownership, relabel=True)
        # Pull progress goes out as runner events, so logs show it in order with the steps.
        ensure_images(ImagePuller(self.client, notify), changes)
        check_major_versions(self.client, self.topology, changes, self._find)
        for node, _ in (c for c in changes if c[0].name in self._groups):
            self.ha.image(node)  # built once per base image, before any member changes

    # -- definitions ------------------------------------------------------------------------------
    def _secrets(self) -> dict[str, str]:
        return self.ctx.store.known_secrets(self.topology)

    def spec(self, node: Node, issue: bool = False) -> spec.ContainerSpec:
        """The node's container; with issue=True its certificate is (re)issued first (only `apply` does)."""
        s = spec.secure_spec(self.topology, node, self._secrets(), self._tls(node, issue))
        return spec.replace_spec(s, labels={**s.labels, **self.ctx.ownership.labels()}, binds=self._binds(node))

    def desired_fingerprint(self, node: Node) -> str:
        group = self._groups.get(node.name)
        return fingerprint(self.ha.definition(group)) if group else super().desired_fingerprint(node)

    def tls_names(self, node: Node) -> set[str]:
        group = self._groups.get(node.name)
        return super().tls_names(node) | (self.ha.tls_names(group) if group else set())

    def _binds(self, node: Node) -> tuple[tuple[str, str], ...]:
        return spec.backup_binds(self.topology, node, self.ctx.topology_path.parent if self.ctx.topology_path
                                 else Path.cwd())

    # -- observation ------------------------------------------------------------------------------
    def _find(self, node: Node) -> Any | None:
        """This node's container, or None; a container of that name not made for this cluster is refused."""
        return owner.find_named(self.client.containers.get, lambda c: c.labels, "container",
                                spec.container_name(self.topology.cluster, node.name), self.topology.cluster,
                                node.name, self.ctx.ownership, "docker rm -f")

    def observe(self, node: Node) -> Observation:
        if node.name in self._groups:
            return self.ha.observe(self._groups[node.name])
        container = self._find(node)
        own = self.ctx.ownership
        if container is None:
            volume = spec.volume_name(self.topology.cluster, node.name)
            found = owner.volume_owner(self.api, volume, node.image)
            if found is not None:  # data left by `down` (or a crash): whose is it?
                own.check(f"volume {volume}", *found)
            return Observation(node.name, NodeState.MISSING)
        status = container.status
        state = NodeState.RUNNING if status == "running" else NodeState.STOPPED
        labels = container.labels or {}
        takeover = owner.taken_over_from(own, "container", container.name, labels)
        return Observation(node.name, state, labels.get(spec.LABEL_FINGERPRINT),
                           f"container {container.short_id} {status}", takeover)

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, node: Node, action: Action) -> None:
        if node.name in self._groups and action is not Action.NOOP:
            self.ha.apply(self._groups[node.name], recreate=action is Action.RECREATE)
            return
        if node.is_postgres and action is not Action.NOOP and may_lead(self.topology, node):
            ha_convert.turn_off(self.ha, node)  # a group Patroni ran: its own member's data kept as the node
        super().apply(node, action)

    def _start(self, found: Any) -> None:
        with docker_errors(f"start {found.name}"):
            found.start()

    def _launch(self, node: Node, found: Any | None) -> None:
        if found is not None:  # RECREATE (or CREATE over a leftover): replace it, keep the volume
            self._remove_container(found)
        s = self.spec(node, issue=True)
        with self._lock:
            if self._puller is None:
                self._puller = ImagePuller(self.client, self.progress)
        self._puller.ensure(node.name, s.image)
        self._ensure_network()
        create_container(self.api, node, s, self.network, self._templates(), self._user_ids,
                         self.ctx.ownership.marker())

    def _templates(self) -> VolumeTemplates:
        with self._lock:
            if self._volume_templates is None:
                self._volume_templates = VolumeTemplates(self.api, self.topology.cluster, self.progress,
                                                         self._user_ids, self.ctx.ownership.labels())
            return self._volume_templates

    def _ensure_network(self) -> None:
        with self._lock:  # not twice at once from the nodes' threads
            owner.ensure_network(self.client, self.network, self.topology.cluster, self.ctx.ownership,
                                 driver="bridge")

    def _remove_container(self, container: Any) -> None:
        with docker_errors(f"remove container {container.name}"):
            if container.status in ("running", "restarting", "paused"):
                container.stop(timeout=60)
            container.remove(v=True, force=True)  # v: anonymous volumes only; the named one stays

    def stop(self, node: Node) -> None:
        if node.name in self._groups:
            return self.ha.stop(self._groups[node.name])
        container = self._find(node)
        if container is not None and container.status in ("running", "restarting", "paused"):
            with docker_errors(f"stop {container.name}"):
                container.stop(timeout=60)

    def remove(self, node: Node, volumes: bool) -> None:
        if node.name in self._groups:
            return self.ha.remove(self._groups[node.name], volumes)
        container = self._find(node)
        if container is not None:
            self._remove_container(container)
        if volumes:
            self._remove_volume(spec.volume_name(self.topology.cluster, node.name))

    def release_group(self, node: Node) -> None:
        """Under HA, a group about to leave Citus: its Patroni frozen, its PostgreSQL still serving the
        unregistration, its keys removed from etcd (ha_release.py)."""
        if node.name in self._groups:
            release(self.ha, self._groups[node.name])

    def _remove_volume(self, name: str) -> None:
        from docker.errors import NotFound

        with docker_errors(f"remove volume {name}"), suppress(NotFound):
            self.client.volumes.get(name).remove(force=True)

    def teardown(self, volumes: bool) -> None:
        """After `down`: remove the cluster's stopped containers; with volumes, its volumes and network.
        Only this instance's: another state directory's leftovers of the same cluster name stay."""
        own = self.ctx.ownership
        cluster_filter = {"label": f"{spec.LABEL_CLUSTER}={self.topology.cluster}"}
        with docker_errors("list the cluster's containers"):
            containers = self.client.containers.list(all=True, filters=cluster_filter)
        for container in containers:
            if own.mine((container.labels or {}).get(LABEL_INSTANCE)):
                self._remove_container(container)
        if not volumes:
            return
        with docker_errors("list the cluster's volumes and network"):
            for vol in self.client.volumes.list(filters=cluster_filter):
                image = (vol.attrs.get("Labels") or {}).get(LABEL_TEMPLATE)
                found = owner.volume_owner(self.api, vol.name, image)
                if found is not None and own.mine(found[0]):
                    self._remove_volume(vol.name)
            for net in owner.own_networks(self.client, self.network, self.topology.cluster, own):
                net.remove()

    def kill(self, node: Node) -> None:
        """SIGKILL the node's container (tests use it to simulate a crash)."""
        container = self._find(node)
        if container is not None and container.status == "running":
            with docker_errors(f"kill {container.name}"):
                container.kill()

    # -- information ------------------------------------------------------------------------------
    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        where = f"in container {spec.container_name(self.topology.cluster, node.name)}, "
        group = self._groups.get(node.name)
        if group is not None:  # under HA: a member's container runs, and Patroni says the group is led
            return node_readiness(self, self.ctx, node, timeout, where, tls=self.tls_covers(node),
                                  alive=lambda: self.ha.running(group), interval=0.5,
                                  also=group_ready(self.ctx, group.members))
        return node_readiness(self, self.ctx, node, timeout, where, tls=self.tls_covers(node),
                              alive=lambda: self._running(node))

    def _running(self, node: Node) -> bool:
        container = self._find(node)
        return container is not None and container.status == "running"

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        if node.name in self._groups:
            return self.ha.logs(self._groups[node.name], tail)
        container = self._find(node)
        if container is None:
            return []
        with docker_errors(f"read the logs of {container.name}"):
            raw = container.logs(stdout=True, stderr=True, tail=tail if tail else "all")
        return raw.decode(errors="replace").splitlines()

    def endpoint(self, node: Node) -> Endpoint:
        return Endpoint(node.name, node.role.value, node.engine.value, self.name, node.host, node.port,
                        node.name, spec.CONTAINER_PORT[node.engine], node.database,
                        spec.TLS_DIR if self.tls_covers(node) else None)

    def _running_container(self, node: Node) -> Any:
        container = self._find(node)
        if container is None or container.status != "running":
            raise BackendError(f"{node.name} is not running", hint="run `streamctl up` first")
        return container

    def container_id(self, node: Node) -> str:
        """The node's running container (pgBackRest runs in it: streamctl.backup)."""
        return str(self._running_container(node).id)

    def image_users(self, container_id: str, image: str, name: str) -> dict[str, tuple[int, int]]:
        """user name -> (uid, gid) in `image`, read once from one of its containers."""
        return self._user_ids.of(self.api, container_id, image, name)

    def persist_secrets(self, node: Node) -> None:
        """After a rotation: the container's secret files (Redis's configuration, the password files) get the
        current values in place, so a restart keeps them; the container itself stays (no recreate). Under HA
        each member's Patroni configuration (the superuser's password)."""
        if node.name in self._groups:
            self.ha.persist(self._groups[node.name])
            return
        container = self._running_container(node)
        s = self.spec(node)
        put_files(self.api, container.id, s.image, s.name, [f for f in s.files if f.secret], self._user_ids)

    def source_address(self, node: Node) -> str:
        if node.name in self._groups:  # any member may lead (and connect) by now: the cluster's network, as on Swarm
            return owner.subnet(self.client, self.network)
        container = self._running_container(node)
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
        address = (networks.get(self.network) or {}).get("IPAddress")
        if not address:
            raise BackendError(f"{node.name} has no address on network {self.network}",
                               hint="run `streamctl up` to recreate it")
        return str(address)

    def psql_argv(self, node: Node, user: str, password: str, database: str,
                  args: list[str]) -> tuple[list[str], dict[str, str]]:
        exe = shutil.which("docker")
        if exe is None:
            raise PreflightError("the docker command-line client is not installed (psql runs inside the "
                                 "container through `docker exec`)",
                                 hint="install the docker CLI, or connect with "
                                      "`psql \"$(streamctl url NODE)\"`")
        tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
        container = spec.container_name(self.topology.cluster, node.name)
        if node.name in self._groups:  # under HA: in the container of the member that leads now
            container = self.ha.leader_container(self._groups[node.name], self.ctx.ca_path() if self.ctx.tls_on
                                                 else None)
        # `-e PGPASSWORD` without a value passes ours through, keeping the password out of the argv.
        env = {"PGPASSWORD": password}
        if self.tls_covers(node):  # inside the container, psql verifies the server with the container's CA copy
            env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=f"{spec.TLS_DIR}/{CA}")
        passed = [a for k in env for a in ("-e", k)]
        return ([exe, "exec", "-i", *tty, *passed, container, "psql", "-h", "127.0.0.1", "-p",
                 str(spec.CONTAINER_PORT[node.engine]), "-U", user, "-d", database, *args], env)
