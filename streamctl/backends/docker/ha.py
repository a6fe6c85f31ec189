"""High availability on Docker: a group (a Citus group, or the analytics primary's) is one container per
member (the HA member image: the node's image with Patroni, ha_image.py), each on the cluster's network under its
member name (Patroni's `connect_address`, what pg_dist_node stores and the analytics replicas' subscriptions
name), with its own volume, its PostgreSQL and REST ports published on the topology's bind; etcd runs in
containers of the same image. Patroni's configuration is `streamctl/ha/`'s, with the containers' paths and
names; it is copied in (0600) before the first start, like every secret."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.backends.base import LEGACY_FORMS, NodeState, Observation, fingerprint, made_as
from streamctl.backends.docker import ha_convert, ha_release, owner, spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import put_files
from streamctl.backends.docker.ha_image import MEMBER_ENTRYPOINT, dockerfile, member_image
from streamctl.backends.docker.pgbackrest_server import member_commands
from streamctl.backends.docker.prepare import image_major
from streamctl.config.members import EtcdMember, Group, Member, etcd_members, may_lead
from streamctl.config.model import Engine, Node
from streamctl.engines.tls import server_files
from streamctl.errors import RefusedError
from streamctl.ha import etcd as etcd_conf
from streamctl.ha import patroni, rolling
from streamctl.ha.convert import not_answering
from streamctl.ha.runtime import PATRONI
from streamctl.ha.secrets import KEYS, ha_secrets
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.backends.docker.backend import DockerBackend

PG_PORT, REST_PORT, ETCD_PORT, ETCD_PEER_PORT = 5432, 8008, 2379, 2380
MOUNT = spec.DATA_MOUNT[Engine.POSTGRES]  # the member's volume: Patroni's data, socket and pgpass in it
ETCD_MOUNT = "/var/lib/etcd"
MEMBER = patroni.MemberPaths(Path(MOUNT))  # a member's data and socket, the same in every member's container
CONFIG = f"{spec.FILES_DIR}/patroni.yml"
LABEL_HA = f"{spec.LABEL_PREFIX}.ha"  # on a group member's container: "member"; on etcd's: "etcd"


def _config_file(text: str) -> spec.ContainerFile:
    """A member's patroni.yml in its container: the server user's, 0600 (it holds the passwords)."""
    return spec.ContainerFile(CONFIG, text.encode(), 0o600, "postgres", stand_in=b"<patroni.yml>")


class DockerHa:
    """The groups under HA of one Docker backend (the Citus groups, the analytics primary's): their members'
    containers and the etcd containers."""

    def __init__(self, backend: DockerBackend, groups: dict[str, Group]) -> None:
        self.b, self.groups = backend, groups
        self.t = backend.topology
        self.etcd = etcd_members(self.t)
        self._etcd_lock = threading.Lock()
        self._images: dict[str, str] = {}

    # -- names ------------------------------------------------------------------------------------
    def container(self, name: str) -> str:
        return spec.container_name(self.t.cluster, name)

    def _in_network(self, e: EtcdMember) -> EtcdMember:
        return EtcdMember(e.name, e.name, ETCD_PORT, ETCD_PEER_PORT)

    def _find(self, name: str) -> Any | None:
        return owner.find_named(self.b.client.containers.get, lambda c: c.labels, "container", self.container(name),
                                self.t.cluster, name, self.b.ctx.ownership, "docker rm -f")

    def tls_names(self, group: Group) -> set[str]:
        return {n for m in group.members for n in (m.name, self.container(m.name))}

    # -- definitions ------------------------------------------------------------------------------
    def _bindir(self, node: Node) -> Path:
        major = image_major(self.b.client, node.image) if self._present(node.image) else None
        return Path(f"/usr/lib/postgresql/{major or 'unknown'}/bin")

    def _present(self, image: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.b.client.api.inspect_image(image)
            return True
        except ImageNotFound:
            return False

    def configs(self, group: Group, password: str | None = None, masked: bool = False,
                settings: bool = True) -> dict[str, str]:
        """Every member's patroni.yml (stand-ins: `password`, `masked`; `settings`: as patroni.member_config's)."""
        node = group.node
        tls_dir = Path(spec.TLS_DIR) if self.b.tls_covers(node) else None
        etcd = [f"{e.name}:{ETCD_PORT}" for e in self.etcd]
        secrets = {k: f"<{k}>" for k in KEYS} if masked else ha_secrets(self.b.ctx.store.root)
        generation = self.b.ctx.store.read().get("backup_generation")  # after `up --from-backup`
        out = {}
        for m in group.members:
            site = patroni.Site(f"0.0.0.0:{PG_PORT}", f"{m.name}:{PG_PORT}", f"0.0.0.0:{REST_PORT}",
                                f"{m.name}:{REST_PORT}", tuple(etcd), ("samenet",))
            out[m.name] = patroni.render(patroni.member_config(
                self.t, group, m, MEMBER, self._bindir(node), tls_dir,
                password or self.b.ctx.store.known_secrets(self.t)["postgres_password"], secrets, self.etcd, site,
                generation=generation, backup_config=spec.BACKUP_CONFIG, settings=settings))
        return out

    def definition(self, group: Group, legacy: int = 0) -> dict[str, Any]:
        """What, changed, recreates the members' containers (volumes kept; one at a time, ha/rolling.py): the
        base image, the member image's recipe, each member's Patroni configuration without passwords (`persist`
        rewrites them) or bootstrap parameters, ports, certificate. `legacy`: base.LEGACY_FORMS."""
        tls = self.b._tls(group.node, issue=False)
        return {"engine": "patroni", "image": group.node.image, "recipe": [PATRONI, dockerfile(""),
                                                                          MEMBER_ENTRYPOINT],
                "config": self.configs(group, "<postgres_password>", masked=legacy < 2, settings=legacy >= 1),
                "bind": group.node.bind,
                "ports": [[m.port, m.rest_port] for m in group.members],
                **({"binds": binds} if (binds := self.b._binds(group.node)) else {}),
                "etcd": [[e.host, e.port] for e in self.etcd],
                "tls": tls.fingerprint if tls is not None else None, **self._commands(group, tls)}

    def _commands(self, group: Group, tls: Any) -> dict[str, dict[str, list[str]]]:
        """A backed-up group's members' commands (pgBackRest's TLS server beside Patroni), else none."""
        found = member_commands(self.t, group, tls, self.b.ctx.store.read().get("backup_generation"))
        return {"commands": found} if found else {}

    def made_as(self, group: Group, label: str | None) -> str | None:
        return made_as(label, partial(self.definition, group))

    # -- observation ------------------------------------------------------------------------------
    def observe(self, group: Group) -> Observation:
        found = {m.name: self._find(m.name) for m in group.members}
        live = [c for c in found.values() if c is not None]
        if not live:
            volume = spec.volume_name(self.t.cluster, group.node.name)
            seen = owner.volume_owner(self.b.api, volume, None)
            if seen is not None:
                self.b.ctx.ownership.check(f"volume {volume}", *seen)
            return Observation(group.node.name, NodeState.MISSING)
        running = [n for n, c in found.items() if c is not None and c.status == "running"]
        frozen = [n for n in running if ha_release.frozen(found[n])]
        etcd_up = all(self._etcd_running(e) for e in self.etcd)
        state = (NodeState.RUNNING if len(running) == len(group.members) and etcd_up and not frozen
                 else NodeState.DEGRADED if running else NodeState.STOPPED)
        labels = live[0].labels or {}
        detail = (f"{len(running)} of {len(group.members)} members' containers running"
                  + ("" if etcd_up else "; etcd is down")
                  + (f"; Patroni frozen in {', '.join(frozen)}: a scale that released the group was interrupted "
                     "(`up` resumes it; the same scale finishes the removal)" if frozen else
                     "" if state is NodeState.RUNNING else " (`up` starts the others)"))
        if not ha_convert.is_member(live[0]):
            detail = "holds data made without ha: `up` makes it its group's leader under Patroni"
        takeover = owner.taken_over_from(self.b.ctx.ownership, "container", live[0].name, labels)
        made = self.made_as(group, labels.get(spec.LABEL_FINGERPRINT))
        return Observation(group.node.name, state, made, detail, takeover)

    def _etcd_running(self, e: EtcdMember) -> bool:
        c = self._find(e.name)
        return c is not None and c.status == "running"

    def running(self, group: Group) -> bool:
        return any((c := self._find(m.name)) is not None and c.status == "running" for m in group.members)

    def mode_change(self, node: Node, under_ha: bool) -> RefusedError | None:
        """Turning HA on for a node whose container ran without Patroni, or off for a group Patroni runs: what
        cannot be done safely is refused before anything changes (ha_convert.py converts in `apply`)."""
        c = self.b._find(node)
        if c is None:  # data left by `down`: a plain server's under ha (converted), or Patroni's with ha off
            found = (ha_convert.layout(self, spec.volume_name(self.t.cluster, node.name), node.image)
                     if under_ha or may_lead(self.t, node) else None)
            if found is not None and under_ha and found.plain:
                return ha_convert.on_refusal(self, self.groups[node.name])
            return (not_answering(node.name, "Patroni (`down` removed its members' containers)")
                    if found is not None and not under_ha and found.member and not found.marker else None)
        was_ha = ha_convert.is_member(c)
        if under_ha and not was_ha:
            return ha_convert.on_refusal(self, self.groups[node.name])
        if was_ha and not under_ha:
            return ha_convert.off_refusal(self, node, c)
        return None

    # -- changes ----------------------------------------------------------------------------------
    def image(self, node: Node) -> str:
        with self._etcd_lock:
            if node.image not in self._images:
                self.b.progress(node.name, "building the HA member image (once per base image)")
                self._images[node.image] = member_image(self.b.client, node.image)
            return self._images[node.image]

    def apply(self, group: Group, recreate: bool) -> None:
        """Every member's container present and running (recreate: replaced, volumes kept); etcd first. A
        member whose container was made from another definition is replaced too."""
        ha_secrets(self.b.ctx.store.root, create=True)
        self.b._ensure_network()
        image = self.image(group.node)
        self._ensure_etcd(image)
        tls = self.b._tls(group.node, issue=True)
        configs = self.configs(group)
        commands = self._commands(group, tls).get("commands", {})
        fp = fingerprint(self.definition(group))
        current = {fp, *(fingerprint(self.definition(group, k)) for k in LEGACY_FORMS)}  # made_as, once per group
        converting = ha_convert.turn_on(self, group)  # the node's own data first, when it ran without Patroni
        first_alone = converting or ha_convert.adopting(self, group)
        hold = ha_convert.standbys_wait(self, group, first_alone)

        def ensure(m: Member, replace: bool) -> None:
            c = self._find(m.name)
            if c is not None and replace:
                self.b._remove_container(c)
                c = None
            if c is None:
                files = [_config_file(configs[m.name])]
                if tls is not None:
                    files += [spec.ContainerFile(f"{spec.TLS_DIR}/{n}", data, mode, "postgres")
                              for n, (data, mode) in server_files("postgres", tls).items()]
                self._create(m.name, image, group.node.role.value, "postgres", MOUNT,
                             {PG_PORT: (group.node.bind, m.port), REST_PORT: (group.node.bind, m.rest_port)},
                             files, fp, commands.get(m.name), self.b._binds(group.node))
            elif c.status != "running":
                with docker_errors(f"start {c.name}"):
                    c.start()
            elif ha_release.frozen(c):
                ha_release.thaw(c)

        stale = [m for m in group.members if (c := self._find(m.name)) is not None
                 and (recreate or (c.labels or {}).get(spec.LABEL_FINGERPRINT) not in current)]
        rolled = not first_alone and rolling.roll_group(self.b.ctx, group, stale, lambda m: ensure(m, True))
        for m in group.members:
            ensure(m, not rolled and m in stale)
            if hold and m is group.members[0]:  # the standbys clone once the group is led
                ha_convert.wait_led(self, group, first=first_alone)

    def persist(self, group: Group) -> None:
        """After a rotation: each member's patroni.yml rewritten in its container (created or running), which
        stays; Patroni reads it again when asked to reload (services/passwords.py)."""
        configs = self.configs(group)
        for m in group.members:
            c = self._find(m.name)
            if c is not None:
                put_files(self.b.api, c.id, str(c.attrs["Config"]["Image"]), c.name, [_config_file(configs[m.name])],
                          self.b._user_ids)

    def _ensure_etcd(self, image: str) -> None:
        with self._etcd_lock:  # the groups apply in parallel threads: etcd is made once
            inside = [self._in_network(e) for e in self.etcd]
            for e, m in zip(self.etcd, inside, strict=True):
                c = self._find(e.name)
                if c is None:
                    argv = etcd_conf.argv("etcd", m, inside, Path(ETCD_MOUNT) / "data", self.t.cluster, "0.0.0.0")
                    self._create(e.name, image, "etcd", "etcd", ETCD_MOUNT, {ETCD_PORT: (e.host, e.port)}, [], "",
                                 argv)
                elif c.status != "running":
                    with docker_errors(f"start {c.name}"):
                        c.start()
            for e in self.etcd:
                self._wait_etcd(e)

    def _wait_etcd(self, e: EtcdMember, timeout: float = 60.0) -> None:
        name = self.container(e.name)
        Readiness(f"etcd ({name}) healthy", lambda: etcd_conf.healthy(e), timeout, interval=0.3,
                  hint=f"see `docker logs {name}`").wait()

    def _create(self, name: str, image: str, role: str, engine: str, mount: str,
                ports: dict[int, tuple[str, int]], files: list[spec.ContainerFile], fp: str,
                argv: list[str] | None, binds: tuple[tuple[str, str], ...] = ()) -> None:
        """`binds`: a backed-up group's directory repository (pgBackRest runs in every member's container)."""
        api = self.b.api
        labels = {spec.LABEL_CLUSTER: self.t.cluster, spec.LABEL_NODE: name, spec.LABEL_ROLE: role,
                  spec.LABEL_ENGINE: engine, LABEL_HA: "member" if engine == "postgres" else "etcd",
                  **self.b.ctx.ownership.labels(), **({spec.LABEL_FINGERPRINT: fp} if fp else {})}
        volume = spec.volume_name(self.t.cluster, name)
        with docker_errors(f"create volume {volume}"):
            api.create_volume(volume, labels={k: v for k, v in labels.items() if k != spec.LABEL_FINGERPRINT})
        mounts = {volume: {"bind": mount, "mode": "rw"}, **{h: {"bind": m, "mode": "rw"} for h, m in binds}}
        host_config = api.create_host_config(port_bindings=ports, binds=mounts,
                                             shm_size="256m" if engine == "postgres" else None)
        networking = api.create_networking_config({self.b.network: api.create_endpoint_config(aliases=[name])})
        with docker_errors(f"create container {self.container(name)}"):
            created = api.create_container(image, name=self.container(name), hostname=name, labels=labels,
                                           ports=list(ports), host_config=host_config, networking_config=networking,
                                           entrypoint=argv[:1] if argv else None, command=argv[1:] if argv else None)
        put_files(api, created["Id"], image, self.container(name), files, self.b._user_ids)
        owner.write_marker(api, created["Id"], mount, self.b.ctx.ownership.marker(), self.container(name))
        with docker_errors(f"start container {self.container(name)}"):
            api.start(created["Id"])

    def stop(self, group: Group) -> None:
        for m in reversed(group.members):  # the standbys first: the first member is the likely leader
            c = self._find(m.name)
            if c is not None and c.status in ("running", "restarting", "paused"):
                with docker_errors(f"stop {c.name}"):
                    c.stop(timeout=60)

    def remove(self, group: Group, volumes: bool) -> None:
        if volumes:  # data that goes needs no clean shutdown (as on the local backend): ha_release.py
            return ha_release.discard(self, group)
        self.stop(group)
        for c in (c for m in group.members if (c := self._find(m.name)) is not None):
            self.b._remove_container(c)

    def logs(self, group: Group, tail: int) -> list[str]:
        c = self._find(group.members[0].name)
        if c is None:
            return []
        with docker_errors(f"read the logs of {c.name}"):
            raw = c.logs(stdout=True, stderr=True, tail=tail if tail else "all")
        return list(raw.decode(errors="replace").splitlines())

    def leader_container(self, group: Group, ca: str | None) -> str:
        """The container of the member that leads now (the first member's when none answers)."""
        from streamctl.ha import rest

        states = rest.group_members(group.members, ca)
        leader = next((s.name for s in states if s.ha_role == "leader"), group.members[0].name)
        return self.container(leader)
