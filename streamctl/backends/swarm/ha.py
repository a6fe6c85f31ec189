"""High availability on Swarm: each member of a Citus group is a service of its own (the HA member image,
ha_image.py, built on the manager and put on the hosts that run members, image_spread.py), pinned to a host
no other member of its group holds (ha_place.py), with its own volume there. On the cluster's overlay it is
known by its member name (a network alias: Patroni's `connect_address`, what pg_dist_node stores); its
PostgreSQL and REST ports are published in host mode on its host, where streamctl reaches it. Patroni's
configuration and the certificates arrive as Swarm secrets (0600, the server's user); etcd runs as one
service per member, on distinct hosts too. Patroni leads; Swarm restarts a task in place; a changed definition
updates a led group's services one at a time (ha/rolling.py), each forced to a new task (1: an analytics
standby's file has no `bootstrap`, so a changed `ha.loop_wait` leaves its task template as it was)."""

from __future__ import annotations

import threading
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.backends.base import NodeState, Observation, fingerprint, made_as
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.ha import LABEL_HA
from streamctl.backends.docker.ha_image import MEMBER_ENTRYPOINT, SWARM_MEMBER_COMMAND, dockerfile, member_image
from streamctl.backends.docker.prepare import image_major
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.ha_place import place_members
from streamctl.backends.swarm.image_spread import ImageSpread
from streamctl.backends.swarm.placement import Pin
from streamctl.backends.swarm.volumes import Leftover
from streamctl.config import constraints as cons
from streamctl.config.members import EtcdMember, Group, Member, etcd_members
from streamctl.config.model import Engine
from streamctl.errors import PreflightError
from streamctl.ha import etcd as etcd_conf
from streamctl.ha import patroni, rolling
from streamctl.ha.runtime import PATRONI
from streamctl.ha.secrets import ha_secrets
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.backends.swarm.backend import SwarmBackend

SWARM_LEGACY = (1,)  # the base.LEGACY_FORMS a member's service may carry (its passwords were never left out)

PG_PORT, REST_PORT, ETCD_PORT, ETCD_PEER_PORT = 5432, 8008, 2379, 2380
MOUNT = docker_spec.DATA_MOUNT[Engine.POSTGRES]
ETCD_MOUNT = "/var/lib/etcd"
CONFIG = f"{docker_spec.FILES_DIR}/patroni.yml"
NS = sspec.NS


class SwarmHa:
    """The groups under HA of one Swarm backend: their members' services and etcd's."""

    def __init__(self, backend: SwarmBackend, groups: dict[str, Group]) -> None:
        self.b, self.groups, self.t = backend, groups, backend.topology
        self.etcd = etcd_members(self.t)
        self._lock = threading.Lock()
        self._planned: dict[str, Pin] = {}
        self._images: dict[str, str] = {}
        self._etcd_ready = False

    # -- names and places -------------------------------------------------------------------------
    def service(self, name: str) -> str:
        return docker_spec.container_name(self.t.cluster, name)

    def _find(self, name: str) -> Any | None:
        from docker.errors import NotFound

        with docker_errors(f"inspect service {self.service(name)}"):
            try:
                return self.b.client.services.get(self.service(name))
            except NotFound:
                return None

    def pin(self, name: str) -> Pin | None:
        return self.b.hosts.pin(name) or self._planned.get(name)

    def plan(self) -> None:
        """Before any change: a host for every member and etcd member, distinct within a group (and among
        etcd's); too few hosts is a PreflightError with the counts."""
        hosts = self.b.hosts
        usable = {a["ID"]: a for a in hosts.nodes(refresh=True).values()
                  if a.get("Status", {}).get("State") == "ready" and a.get("Spec", {}).get("Availability") == "active"}
        names = [m.name for g in self.groups.values() for m in g.members] + [e.name for e in self.etcd]
        pinned = {n: p.id for n in names if (p := hosts.pin(n)) is not None}
        rules = {g.node.name: cons.for_node(self.t, g.node) for g in self.groups.values()}
        chosen, problems = place_members(list(self.groups.values()), self.etcd,
                                         [hosts.facts(a) for a in usable.values()], pinned, rules)
        if problems:
            raise PreflightError("ha: too few Swarm hosts to keep a group's members on distinct hosts; nothing "
                                 "was created", details=problems, hint="add or activate Swarm hosts, loosen the "
                                 "placement, or lower ha.standbys / ha.etcd.members")
        self._planned.update({n: hosts.pin_of(usable[h]) for n, h in chosen.items()})

    def addressed(self, group: Group) -> tuple[Member, ...]:
        """The members as streamctl reaches them: each at the address of its host (what `host` reads)."""
        return tuple(replace(m, node=replace(m.node, bind=p.addr)) if (p := self.pin(m.name)) and p.addr else m
                     for m in group.members)

    def hosts_of(self, group: Group) -> set[str]:
        return {p.addr for m in group.members if (p := self.pin(m.name)) and p.addr}

    # -- definitions ------------------------------------------------------------------------------
    def configs(self, group: Group, settings: bool = True) -> dict[str, str]:
        node = group.node
        tls_dir = Path(docker_spec.TLS_DIR) if self.b.tls_covers(node) else None
        major = image_major(self.b.client, node.image)
        secrets = ha_secrets(self.b.ctx.store.root)
        out = {}
        for m in group.members:
            site = patroni.Site(f"0.0.0.0:{PG_PORT}", f"{m.name}:{PG_PORT}", f"0.0.0.0:{REST_PORT}",
                                f"{m.name}:{REST_PORT}", tuple(f"{e.name}:{ETCD_PORT}" for e in self.etcd),
                                ("samenet",))
            out[m.name] = patroni.render(patroni.member_config(
                self.t, group, m, patroni.MemberPaths(Path(MOUNT)), Path(f"/usr/lib/postgresql/{major}/bin"),
                tls_dir, self.b.ctx.store.known_secrets(self.t)["postgres_password"], secrets, self.etcd, site,
                settings=settings))
        return out

    def definition(self, group: Group, legacy: int = 0) -> dict[str, Any]:
        """Without the bootstrap's parameters (`up` keeps them in the group's configuration); legacy 1: with."""
        tls = self.b._tls(group.node, issue=False)
        return {"engine": "patroni", "image": group.node.image,
                "recipe": [PATRONI, dockerfile(""), MEMBER_ENTRYPOINT, SWARM_MEMBER_COMMAND],
                "config": self.configs(group, settings=legacy >= 1),
                "ports": [[m.port, m.rest_port] for m in group.members],
                "etcd": [[e.name, e.port] for e in self.etcd], "tls": tls.fingerprint if tls is not None else None}

    # -- the member image -------------------------------------------------------------------------
    def image(self, group: Group) -> str:
        """Built on the manager once per base image, and put on every host that runs a member or etcd."""
        node = group.node
        with self._lock:
            if node.image not in self._images:
                self.b.progress(node.name, "building the HA member image on the manager (once per base image)")
                tag = member_image(self.b.client, node.image)
                hosts = self.b.hosts
                local = hosts.pin_of(hosts.nodes()[hosts.local_id])
                names = [m.name for g in self.groups.values() for m in g.members] + [e.name for e in self.etcd]
                targets = list({p.id: p for n in names if (p := self.pin(n)) is not None}.values())
                self.b._ensure_network()
                self.b.progress(node.name, "putting the HA member image on the members' hosts")
                spread = ImageSpread(self.b.client, self.t.cluster, self.b.network, local)
                for host, how in spread.spread(tag, {p.id: node.image for p in targets}, targets).items():
                    self.b.progress(node.name, f"HA member image on {host}: {how}")
                self._images[node.image] = tag
            return self._images[node.image]

    # -- observation ------------------------------------------------------------------------------
    def observe(self, group: Group) -> Observation:
        found = {m.name: self._find(m.name) for m in group.members}
        live = [s for s in found.values() if s is not None]
        if not live:
            return Observation(group.node.name, NodeState.MISSING)
        up = [n for n, s in found.items() if s is not None and _replicas(s) > 0]
        state = (NodeState.RUNNING if len(up) == len(group.members) else NodeState.DEGRADED if up
                 else NodeState.STOPPED)
        where = ", ".join(f"{m.name} on {p.hostname}" for m in group.members if (p := self.pin(m.name)))
        labels = live[0].attrs["Spec"].get("Labels") or {}
        return Observation(group.node.name, state, made_as(labels.get(docker_spec.LABEL_FINGERPRINT),
                                                           partial(self.definition, group), SWARM_LEGACY),
                           f"{len(up)} of {len(group.members)} members' services up ({where})")

    def running(self, group: Group) -> bool:
        return any((s := self._find(m.name)) is not None and _replicas(s) > 0 for m in group.members)

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, group: Group, recreate: bool) -> None:
        ha_secrets(self.b.ctx.store.root, create=True)
        self.b._ensure_network()
        for name in [m.name for m in group.members] + [e.name for e in self.etcd]:
            if self.b.hosts.pin(name) is None and name in self._planned:
                self.b.hosts.record(name, self._planned[name])
        tag = self.image(group)
        self._ensure_etcd(tag)
        tls = self.b._tls(group.node, issue=True)  # first: the fingerprint covers the certificate issued
        configs, fp = self.configs(group), fingerprint(self.definition(group))
        current = {fp, *(fingerprint(self.definition(group, k)) for k in SWARM_LEGACY)}  # made_as's, for the group

        def ensure(m: Member, update: bool) -> None:
            found, pin = self._find(m.name), self.pin(m.name)
            assert pin is not None
            if found is None or update:
                kwargs = self._member(group, m, pin, tag, configs[m.name], tls, fp)
                with docker_errors(f"{'update' if found else 'create'} service {self.service(m.name)}"):
                    _ = (found.update(**kwargs, force_update=True) if found is not None  # a new task, even when
                         else self.b.client.services.create(**kwargs))  # its own file did not change (1)
            elif _replicas(found) == 0:
                with docker_errors(f"scale {found.name} to 1"):
                    found.scale(1)

        stale = [m for m in self.addressed(group) if (f := self._find(m.name)) is not None and (
            recreate or (f.attrs["Spec"].get("Labels") or {}).get(docker_spec.LABEL_FINGERPRINT) not in current)]
        rolled = rolling.roll_group(self.b.ctx, replace(group, members=self.addressed(group)), stale,
                                    lambda m: ensure(m, True))  # one at a time, the leader last
        for m in group.members:  # not rolled (a group not led): every stale member at once
            ensure(m, not rolled and m.name in {s.name for s in stale})

    def _labels(self, name: str, role: str, engine: str) -> dict[str, str]:
        return {docker_spec.LABEL_CLUSTER: self.t.cluster, docker_spec.LABEL_NODE: name, docker_spec.LABEL_ROLE: role,
                docker_spec.LABEL_ENGINE: engine, LABEL_HA: "member" if engine == "postgres" else "etcd",
                **self.b.ctx.ownership.labels()}

    def _member(self, group: Group, m: Member, pin: Pin, tag: str, config: str, tls: Any, fp: str) -> dict[str, Any]:
        from docker.types import SecretReference

        files = [sspec.SecretFile(sspec.secret_name(self.t.cluster, f"patroni-{m.name}", config), CONFIG, config,
                                  "postgres", 0o600)]
        if tls is not None:
            files += [replace(s, target=f"{docker_spec.TLS_DIR}/{s.target}")
                      for s in sspec.tls_secrets(self.t.cluster, Engine.POSTGRES, tls)]
        refs = []
        for s in files:
            uid, gid = self.b.users.ids(group.node.image, "postgres")
            refs.append(SecretReference(self.b._ensure_secret(s), s.name, filename=s.target, uid=str(uid),
                                        gid=str(gid), mode=s.mode))
        labels = self._labels(m.name, group.node.role.value, "postgres")
        return self._kwargs(m.name, tag, labels, fp, pin, MOUNT, {m.port: PG_PORT, m.rest_port: REST_PORT},
                            secrets=refs, shm=True, command=SWARM_MEMBER_COMMAND)

    def _kwargs(self, name: str, image: str, labels: dict[str, str], fp: str, pin: Pin, mount: str,
                ports: dict[int, int], secrets: list[Any] | None = None, shm: bool = False,
                command: list[str] | None = None) -> dict[str, Any]:
        from docker.types import EndpointSpec, Healthcheck, Mount, NetworkAttachmentConfig, RestartPolicy, ServiceMode

        volume = docker_spec.volume_name(self.t.cluster, name)
        mounts = [Mount(mount, volume, type="volume", labels=dict(labels))]
        if shm:
            mounts.append(Mount("/dev/shm", None, type="tmpfs", tmpfs_size=256 << 20))
        return {"image": image, "name": self.service(name), "command": command, "hostname": name,
                "labels": {**labels, docker_spec.LABEL_FINGERPRINT: fp, sspec.LABEL_HOST: pin.id},
                "container_labels": dict(labels), "mounts": mounts, "secrets": secrets or [],
                "healthcheck": Healthcheck(test=["NONE"]),
                "networks": [NetworkAttachmentConfig(self.b.network, aliases=[name])],
                "stop_grace_period": sspec.STOP_GRACE * NS, "mode": ServiceMode("replicated", replicas=1),
                "restart_policy": RestartPolicy(condition="any", delay=2 * NS, max_attempts=0),
                "constraints": [f"node.id == {pin.id}"],
                "endpoint_spec": EndpointSpec(mode="dnsrr", ports={p: (c, "tcp", "host") for p, c in ports.items()})}

    def _inside(self, e: EtcdMember) -> EtcdMember:
        return EtcdMember(e.name, e.name, ETCD_PORT, ETCD_PEER_PORT)

    def _ensure_etcd(self, tag: str) -> None:
        with self._lock:
            if self._etcd_ready:
                return
            inside = [self._inside(e) for e in self.etcd]
            for e, m in zip(self.etcd, inside, strict=True):
                pin = self.pin(e.name)
                assert pin is not None
                found = self._find(e.name)
                if found is None:
                    argv = etcd_conf.argv("etcd", m, inside, Path(ETCD_MOUNT) / "data", self.t.cluster, "0.0.0.0")
                    with docker_errors(f"create service {self.service(e.name)}"):
                        self.b.client.services.create(**self._kwargs(
                            e.name, tag, self._labels(e.name, "etcd", "etcd"), "", pin, ETCD_MOUNT,
                            {e.port: ETCD_PORT}, command=argv))
                elif _replicas(found) == 0:
                    with docker_errors(f"scale {found.name} to 1"):
                        found.scale(1)
            for e in self.etcd:
                pin = self.pin(e.name)
                at = EtcdMember(e.name, pin.addr if pin else e.host, e.port, e.peer_port)
                Readiness(f"etcd ({self.service(e.name)}) healthy", partial(etcd_conf.healthy, at), 120.0,
                          interval=0.5, hint=f"see `docker service logs {self.service(e.name)}`").wait()
            self._etcd_ready = True

    def stop(self, group: Group) -> None:
        for m in reversed(group.members):  # the standbys first
            found = self._find(m.name)
            if found is not None and _replicas(found) > 0:
                with docker_errors(f"scale {found.name} to 0"):
                    found.scale(0)
                self.b.hosts.wait_no_task(found)

    def remove(self, group: Group, volumes: bool) -> list[str]:
        """The members' services, and with volumes their volumes on their hosts; what could not go."""
        return self._remove([m.name for m in group.members], group.node.image, volumes)

    def teardown(self, volumes: bool) -> list[str]:
        """etcd's services (and volumes), once no group needs it."""
        return self._remove([e.name for e in self.etcd], self.t.metadata.coordinator.image, volumes)

    def _remove(self, names: list[str], image: str, volumes: bool) -> list[str]:
        problems = []
        for name in names:
            found = self._find(name)
            if found is not None:
                with docker_errors(f"remove service {found.name}"):
                    found.remove()
            pin = self.b.hosts.pin(name)
            if volumes and pin is not None:
                left = Leftover(docker_spec.volume_name(self.t.cluster, name), name, pin, image)
                why = self.b.hosts.unavailable(pin) if pin.id != self.b.hosts.local_id else None
                if why:
                    self.b.volumes.remove_later(left)
                else:
                    why = self.b.volumes.remove(left)
                if why:
                    problems.append(f"{left.describe()}: {why}")
                self.b.hosts.forget(name)
        return problems

    def logs(self, group: Group, tail: int) -> list[str]:
        found = self._find(group.members[0].name)
        if found is None:
            return []
        with docker_errors(f"read the logs of {found.name}"):
            raw = b"".join(found.logs(stdout=True, stderr=True, tail=tail if tail else "all"))
        return raw.decode(errors="replace").splitlines()


def _replicas(service: Any) -> int:
    return int(service.attrs["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 0))
