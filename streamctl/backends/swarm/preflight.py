"""What the Swarm backend checks before any service changes (`preflight`, `prepare`): a manager, ports it
can publish, no foreign services, pinned hosts present and able to run their nodes, a host for every new
node, no new node on a volume left from an earlier one, no PostgreSQL major version change on populated
data, and the images the manager will run."""

from __future__ import annotations

from typing import Any

from streamctl.backends.base import Action, Notify
from streamctl.backends.docker.images import ImagePuller
from streamctl.backends.swarm.hosts import SwarmHosts
from streamctl.backends.swarm.observe import ClusterServices
from streamctl.backends.swarm.volumes import SwarmVolumes
from streamctl.config.checks import swarm_bind_errors
from streamctl.config.model import Node, Topology
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError, RefusedError


def refuse_one_address(topology: Topology) -> None:
    """Swarm publishes a port on every address of its host: a topology that binds one address is refused
    (checked before the manager is even asked)."""
    bind = swarm_bind_errors(topology)
    if bind:
        raise PreflightError("the topology binds ports to one address, which Swarm cannot do",
                             details=bind, hint="set `bind: 0.0.0.0` in the topology")


class SwarmPreflight:
    """The checks, over the manager's client, the hosts' pins and the recorded leftover volumes."""

    def __init__(self, client: Any, ctx: ClusterContext, hosts: SwarmHosts, volumes: SwarmVolumes,
                 services: ClusterServices) -> None:
        self.client, self.ctx, self.hosts, self.volumes, self.services = client, ctx, hosts, volumes, services

    def check(self, nodes: list[Node]) -> None:
        """Before any change: no foreign services, pinned hosts present and available, a host satisfying the
        placement of every node still to be created, its ports free there, no major version change."""
        services = {n.name: self.services.find(n) for n in nodes}
        for name, service in services.items():
            if service is not None:
                self.hosts.adopt(name, service)
        placed = [n for n in nodes if services[n.name] is not None or self.hosts.pin(n.name)]
        self.hosts.check_pins(placed)
        self.hosts.check_pinned_placement(placed)
        new = [n for n in nodes if services[n.name] is None and self.hosts.pin(n.name) is None]
        self.refuse_stale_volumes(new, retry=False)
        self.hosts.plan(new)
        self.hosts.check_ports(nodes, services)
        self._check_majors(nodes, services)

    def unreachable(self, nodes: list[Node]) -> dict[str, str]:
        """Nodes pinned to a host that cannot run them now (left, down, drained, paused)."""
        out = {}
        for node in nodes:
            pin = self.hosts.pin(node.name)
            why = self.hosts.unavailable(pin) if pin else None
            if why:
                out[node.name] = f"{node.name} is pinned to {why}; its data volume lives there"
        return out

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Leftover volumes removed where their host answers, then the images of the nodes the manager
        will run; the other hosts pull (or hold) their own, and a task they cannot start shows as
        rejected in readiness."""
        from streamctl.backends.docker.prepare import ensure_images

        self.refuse_stale_volumes([node for node, action in changes if action is Action.CREATE], retry=True)
        local = self.hosts.local_id
        here = [(node, action) for node, action in changes
                if (pin := self.hosts.pin(node.name) or self.hosts.planned(node.name)) and pin.id == local]
        if here:
            ensure_images(ImagePuller(self.client, notify), here)

    def refuse_stale_volumes(self, new: list[Node], retry: bool) -> None:
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
