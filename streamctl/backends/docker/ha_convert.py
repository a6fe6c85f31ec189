"""Turning ha on for a Citus node's or the analytics primary's container that already holds data, and off again
(#27 item 6), on Docker. For the analytics primary the replicas' slots stay in its data (Patroni's `ignore_slots`
names them) and `up`'s configuration steps re-point the subscriptions and the FDW server at the group's members.

A plain node and its group's first member share a name, hence a volume: the node's data stays where it is,
only the container around it changes. The plain server keeps its data in the volume's `pgdata/` (the image's
PGDATA), a member in `data/` (Patroni's data_dir, patroni.MemberPaths), so a short helper container renames
one into the other while no server runs on it.

On: while the node still runs as a plain server, the roles Patroni logs in as are made (ha/roles.py), a
checkpoint is taken and its container is removed (a fast, clean shutdown); the helper keeps its pg_hba.conf
beside the data and moves `pgdata/` to `data/`. Then the first member's container starts alone: Patroni finds a
data directory and no cluster in etcd and registers it as the group's leader (keeping its postgresql.conf as
postgresql.base.conf, writing pg_hba.conf itself); only once it leads are the standbys' containers made, and
they clone from it. An `up` stopped halfway is finished by the next one (the helper's move is done once).

Off: only when the node's own member leads (its data stays the node). A marker in the volume records that it
was checked; the standbys stop first (none can be promoted), then the leader; the helper gives the data its
own settings back (postgresql.conf, pg_hba.conf) and moves it to `pgdata/`; the standbys' containers and volumes
go, and etcd's once no member is left in the cluster."""

from __future__ import annotations

import re
from contextlib import suppress
from typing import TYPE_CHECKING, Any, NamedTuple

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.volume_copy import local_mountpoint
from streamctl.config.members import Group
from streamctl.config.model import Engine, Node
from streamctl.errors import BackendError, RefusedError
from streamctl.ha import rest
from streamctl.ha.convert import OFF_MARKER, PATRONI_FILES, not_answering, not_leading, standbys_hold_data
from streamctl.ha.roles import ensure_patroni_roles
from streamctl.ha.secrets import ha_secrets
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.backends.docker.ha import DockerHa

MOUNT = spec.DATA_MOUNT[Engine.POSTGRES]
PLAIN = spec.PGDATA.removeprefix(MOUNT).lstrip("/")  # the plain server's data, in the volume
MEMBER = "data"  # a member's (patroni.MemberPaths.data_dir)
HBA_BEFORE = "pg_hba.before-ha.conf"  # the plain server's access rules, kept beside the data while Patroni runs
REFUSED = 3  # the helper's exit status when the volume holds both layouts (or HA data with no marker)

_ON = f"""set -e
cd {MOUNT}
if [ -f {PLAIN}/PG_VERSION ]; then
  if [ -e {MEMBER}/PG_VERSION ]; then echo "the volume holds both {PLAIN}/ and {MEMBER}/" >&2; exit {REFUSED}; fi
  rm -rf {MEMBER}
  [ -e {HBA_BEFORE} ] || cp -p {PLAIN}/pg_hba.conf {HBA_BEFORE}
  mv {PLAIN} {MEMBER}
fi
"""
_OFF = f"""set -e
cd {MOUNT}
if [ -f {MEMBER}/PG_VERSION ]; then
  if [ -e {PLAIN}/PG_VERSION ]; then echo "the volume holds both {PLAIN}/ and {MEMBER}/" >&2; exit {REFUSED}; fi
  if [ ! -e {OFF_MARKER} ]; then echo "its member was not checked to lead" >&2; exit {REFUSED}; fi
  if [ -f {MEMBER}/postgresql.base.conf ]; then mv {MEMBER}/postgresql.base.conf {MEMBER}/postgresql.conf; fi
  if [ -f {HBA_BEFORE} ]; then mv {HBA_BEFORE} {MEMBER}/pg_hba.conf; fi
  rm -f {" ".join(f"{MEMBER}/{f}" for f in PATRONI_FILES)} pgpass
  rm -rf {PLAIN}
  mv {MEMBER} {PLAIN}
fi
rm -f {OFF_MARKER}
"""


class Layout(NamedTuple):
    plain: bool  # pgdata/ holds data
    member: bool  # data/ holds data
    marker: bool  # the off marker


def is_member(container: Any | None) -> bool:
    from streamctl.backends.docker.ha import LABEL_HA

    return container is not None and (container.labels or {}).get(LABEL_HA) == "member"


def layout(ha: DockerHa, volume: str, image: str) -> Layout | None:
    """What the volume holds (None: no such volume): read on the host when it can, else by a helper."""
    from docker.errors import NotFound

    try:
        ha.b.api.inspect_volume(volume)
    except NotFound:
        return None
    here = local_mountpoint(ha.b.api, volume)
    if here is not None:
        return Layout((here / PLAIN / "PG_VERSION").exists(), (here / MEMBER / "PG_VERSION").exists(),
                      (here / OFF_MARKER).exists())
    script = (f"cd {MOUNT}; for f in {PLAIN}/PG_VERSION {MEMBER}/PG_VERSION {OFF_MARKER}; "
              "do [ -e $f ] && echo 1 || echo 0; done")
    out = _helper(ha, volume, image, script, f"read volume {volume}", "ro").split()
    return Layout(*(x == "1" for x in out[:3]))


def _helper(ha: DockerHa, volume: str, image: str, script: str, what: str, mode: str = "rw") -> str:
    """A one-shot container of the node's image, as root, no network, the volume mounted: the script's output."""
    from docker.errors import ContainerError

    try:
        with docker_errors(what):
            out = ha.b.client.containers.run(image, entrypoint=["sh", "-c", script], user="0", remove=True,
                                             network_disabled=True, volumes={volume: {"bind": MOUNT, "mode": mode}},
                                             labels={spec.LABEL_CLUSTER: ha.t.cluster})
    except ContainerError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip()
        if exc.exit_status == REFUSED:
            raise RefusedError(f"{what}: {said}", hint="nothing was moved; see the README's HA section") from None
        raise BackendError(f"{what} failed (exit {exc.exit_status})", details=said.splitlines()[-10:]) from None
    return bytes(out).decode(errors="replace")


# -- on ----------------------------------------------------------------------------------------------
def on_refusal(ha: DockerHa, group: Group) -> RefusedError | None:
    """Before anything changes: the standbys' volumes must hold no data."""
    held = [m.name for m in group.members[1:]
            if (found := layout(ha, spec.volume_name(ha.t.cluster, m.name), group.node.image)) and found.member]
    return standbys_hold_data(group, held, ", ".join(f"volume {spec.volume_name(ha.t.cluster, n)}" for n in held))


def turn_on(ha: DockerHa, group: Group) -> bool:
    """The node's data made its first member's, when it still is a plain server's: True when it was (the first
    member must then lead before the standbys start, `wait_led`)."""
    node = group.node
    volume = spec.volume_name(ha.t.cluster, node.name)
    c = ha._find(node.name)
    if is_member(c):
        return False
    if c is None:  # data left by `down`, or by an `up` stopped halfway: its plain server makes the roles first
        found = layout(ha, volume, node.image)
        if found is None or not found.plain:
            return False
        ha.b._launch(node, None)
        c = ha._find(node.name)
    if c is not None:
        ha.b.progress(node.name, "its data becomes its group's leader: Patroni's roles, a checkpoint, a clean stop")
        if c.status != "running":
            with docker_errors(f"start {c.name}"):
                c.start()
        Readiness(f"{node.name} (its data, before Patroni takes it)", lambda: _answers(ha, node), 90.0, interval=0.5,
                  hint=f"see `docker logs {c.name}`").wait()
        with ha.b.ctx.pg_connect(node.name, "postgres") as conn:
            ensure_patroni_roles(conn, ha_secrets(ha.b.ctx.store.root, create=True))
            conn.execute("CHECKPOINT")
        ha.b._remove_container(c)  # SIGINT and a wait: PostgreSQL's fast, clean shutdown
    _helper(ha, volume, node.image, _ON, f"move {node.name}'s data to its member's place in volume {volume}")
    return True


def _answers(ha: DockerHa, node: Node) -> bool:
    with ha.b.ctx.pg_connect(node.name, "postgres") as conn:
        conn.execute("SELECT 1")
    return True


def adopting(ha: DockerHa, group: Group) -> bool:
    """The first member's volume holds data no Patroni ran here yet (a restore's, backup/docker_site.py): no
    member's container exists, nor any other member's volume. Its Patroni then starts alone and takes that data
    over as the group's leader; the standbys, made once it leads, clone from it instead of racing it to
    bootstrap a new cluster."""
    from streamctl.backends.docker.container import volume_exists

    first, *rest = (spec.volume_name(ha.t.cluster, m.name) for m in group.members)
    return (all(ha._find(m.name) is None for m in group.members) and volume_exists(ha.b.api, first)
            and not any(volume_exists(ha.b.api, v) for v in rest))


def standbys_wait(ha: DockerHa, group: Group, converting: bool) -> bool:
    """Whether the standbys' containers are made only once the group is led: after a conversion (or with a
    restore's data in the first member's volume: `converting` then too), and when one is missing beside the
    first member's (an `up` stopped halfway): an empty member clones, never bootstraps."""
    return converting or (ha._find(group.members[0].name) is not None
                          and any(ha._find(m.name) is None for m in group.members[1:]))


def wait_led(ha: DockerHa, group: Group, first: bool, timeout: float = 180.0) -> None:
    """Until Patroni says a member leads the group (`first`: the first member, with the node's own data or a
    restore's)."""
    ca = ha.b.ctx.ca_path() if ha.b.ctx.tls_on else None
    name = group.members[0].name

    def leads() -> bool:
        states = rest.group_members(group.members[:1] if first else group.members, ca)
        return any(s.ha_role == "leader" and (s.name == name or not first) for s in states)

    Readiness(f"{name} leading its group (its own data)" if first else f"{group.node.name}'s group led", leads,
              timeout, interval=0.5,
              hint=f"see `docker logs {ha.container(name)}`").wait()


# -- off ---------------------------------------------------------------------------------------------
def off_refusal(ha: DockerHa, node: Node, c: Any) -> RefusedError | None:
    """Turning ha off keeps the data of the node's own member: refused unless it leads (or was checked to)."""
    if _has_marker(c):
        return None
    try:
        with ha.b.ctx.pg_connect(node.name, "postgres") as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            # a standby streams from the leader, by its network name (the member's name)
            upstream = conn.execute("SELECT sender_host FROM pg_stat_wal_receiver").fetchone()
    except (BackendError, OSError):
        return not_answering(node.name, f"PostgreSQL in {c.name}")
    if row is not None and row[0] is False:
        return None
    return not_leading(node.name, str(upstream[0]) if upstream and upstream[0] else None)


def _has_marker(c: Any) -> bool:
    from docker.errors import NotFound

    try:
        c.get_archive(f"{MOUNT}/{OFF_MARKER}")
    except NotFound:
        return False
    return True


def _put_marker(ha: DockerHa, c: Any) -> None:
    from streamctl.backends.docker.files import put_files

    put_files(ha.b.api, c.id, str(c.attrs["Config"]["Image"]), c.name, [spec.ContainerFile(
        f"{MOUNT}/{OFF_MARKER}", b"the node's member led when ha was turned off\n", 0o600, "root")], ha.b._user_ids)


def _own(ha: DockerHa, kind: str, pattern: str) -> list[Any]:
    """This instance's containers or volumes of the cluster whose node label (container) or name matches."""
    from streamctl.ownership import LABEL_INSTANCE

    found = re.compile(pattern)
    flt = {"label": f"{spec.LABEL_CLUSTER}={ha.t.cluster}"}
    with docker_errors(f"list the cluster's {kind}"):
        if kind == "containers":
            return [c for c in ha.b.client.containers.list(all=True, filters=flt)
                    if found.fullmatch((c.labels or {}).get(spec.LABEL_NODE, ""))
                    and ha.b.ctx.ownership.mine((c.labels or {}).get(LABEL_INSTANCE))]
        return [v for v in ha.b.client.volumes.list(filters=flt) if found.fullmatch(v.name)
                and ha.b.ctx.ownership.mine((v.attrs.get("Labels") or {}).get(LABEL_INSTANCE))]


def turn_off(ha: DockerHa, node: Node) -> None:
    """Patroni taken off the node: its standbys stopped and removed, its data given its own settings back."""
    volume = spec.volume_name(ha.t.cluster, node.name)
    c = ha._find(node.name)
    if c is not None and not is_member(c):
        return
    if c is None:
        found = layout(ha, volume, node.image)
        if found is None or not found.member:
            return
    else:
        if not _has_marker(c):
            refusal = off_refusal(ha, node, c)
            if refusal is not None:
                raise refusal
            _put_marker(ha, c)
        ha.b.progress(node.name, "ha off: its standbys stop, then its leader; the data keeps its own settings")
        standbys = _own(ha, "containers", re.escape(node.name) + r"-\d+")
        for s in (*standbys, c):  # the standbys first: with the leader stopped first, one could be promoted
            if s.status in ("running", "restarting", "paused"):
                with docker_errors(f"stop {s.name}"):
                    s.stop(timeout=60)
        for s in (*standbys, c):
            ha.b._remove_container(s)
    _helper(ha, volume, node.image, _OFF, f"give {node.name}'s data its own settings back in volume {volume}")
    for v in _own(ha, "volumes", re.escape(f"{ha.t.cluster}-{node.name}-") + r"\d+-data"):
        ha.b._remove_volume(v.name)
    _forget_etcd(ha)


def _forget_etcd(ha: DockerHa) -> None:
    """etcd's containers and volumes, once no member is left in the cluster and the topology wants none."""
    from streamctl.backends.docker.ha import LABEL_HA

    if ha.groups:
        return
    with ha._etcd_lock:
        members = [c for c in _own(ha, "containers", r".*") if (c.labels or {}).get(LABEL_HA) == "member"]
        if members:
            return
        for c in _own(ha, "containers", r"etcd-\d+"):
            with suppress(BackendError):
                ha.b._remove_container(c)
            ha.b._remove_volume(spec.volume_name(ha.t.cluster, (c.labels or {})[spec.LABEL_NODE]))
