"""`restore --in-place` on the Docker backend: the data it replaces, kept aside as volumes.

Each PostgreSQL node's and Redis's volume (under HA also each standby member's and each etcd member's, so that
`up` finds no group in a fresh etcd and clones the standbys from the restored data, as on the local backend) is
copied to `<volume>-before-restore-<time>` (with the original's
labels, so `down --volumes` and the ownership rules treat it as the cluster's; the instance marker comes
along with the files), flushed, and only then is the original removed: the restore recreates each volume
exactly as for a new cluster, under the same names and ports (Citus's catalog is right already). The copy
runs straight on the host when the engine's volume directories are reachable here (volume_copy.py), else
in a one-shot container with no network. After a failed restore each restored volume is removed and its
aside copied back into a fresh volume of the original name, then the aside removed.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamctl.backends import disk
from streamctl.backends.docker import spec
from streamctl.backends.docker import volume_copy as host
from streamctl.backends.docker.errors import docker_errors
from streamctl.backup.pgbackrest import BackupError
from streamctl.config.members import etcd_members, ha_groups
from streamctl.config.model import Engine
from streamctl.events import Emit, Event
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR

if TYPE_CHECKING:
    from streamctl.backends.docker.backend import DockerBackend
    from streamctl.context import ClusterContext

ASIDE = "-before-restore-"


@dataclass(frozen=True)
class Aside:
    """One node's volume and the copy of it kept aside."""

    node: str
    volume: str
    aside: str
    image: str  # the node's: the helper container copies with it
    labels: dict[str, str] = field(default_factory=dict)  # the original volume's

    @property
    def listing(self) -> str:
        """How `kept_aside` names it: what it is and how the user removes it."""
        return f"volume {self.aside} (docker volume rm {self.aside})"


def move_aside(ctx: ClusterContext, backend: DockerBackend, stamp: str, emit: Emit) -> list[Aside]:
    """Every PostgreSQL node's and Redis's volume (the nodes are stopped, their containers removed) copied
    aside, then removed. A failure puts back what was moved so far and raises."""
    api, moved = backend.api, []
    try:
        for name, image in _kept(ctx):
            volume = spec.volume_name(ctx.topology.cluster, name)
            labels = _labels(api, volume)
            if labels is None:  # never created: nothing to keep
                continue
            one = Aside(name, volume, volume + ASIDE + stamp, image, labels)
            _copy(api, one, one.volume, one.aside)
            with docker_errors(f"remove volume {volume} (its copy is {one.aside})"):
                api.remove_volume(volume)
            moved.append(one)
            emit(Event("info", name, "restore", f"kept as volume {one.aside}"))
    except BaseException:
        put_back(backend, moved, emit)
        raise
    return moved


def _kept(ctx: ClusterContext) -> list[tuple[str, str]]:
    """Whose volumes an in-place restore keeps aside, each with an image its copy can run in: every PostgreSQL
    node's and Redis's; under HA each group's standbys' (cloned again from the restored data) and etcd's (its
    keys name the groups as they were)."""
    t = ctx.topology
    out = [(n.name, n.image) for n in t.nodes()
           if not n.is_external and (n.is_postgres or n.engine is Engine.REDIS)]
    groups = [g for g in ha_groups(t) if not g.node.is_external]
    out += [(m.name, g.node.image) for g in groups for m in g.members[1:]]
    return out + [(e.name, groups[0].node.image) for e in etcd_members(t)] if groups else out


def put_back(backend: DockerBackend, moved: list[Aside], emit: Emit) -> None:
    """After a failed restore: each restored volume removed, the aside copied back under the original name
    (then removed). One that cannot be put back stays aside, named in a `fail` event."""
    api, left = backend.api, []
    for one in moved:
        try:
            _remove(api, one.volume)  # the restored data, if the restore got that far
            _copy(api, one, one.aside, one.volume)
            _remove(api, one.aside)
        except Exception as exc:  # noqa: BLE001 - the others are still put back; this one is named
            left.append(one.aside)
            emit(Event("fail", one.node, "restore", f"its data stays in volume {one.aside} (copy it back into "
                                                    f"{one.volume} by hand): {exc}"))
    if moved and not left:
        emit(Event("info", "*", "restore", "the restore failed: every node's data is back as it was (stopped; "
                                           "`streamctl up` starts it)"))


def _labels(api: Any, volume: str) -> dict[str, str] | None:
    from docker.errors import NotFound

    with docker_errors(f"inspect volume {volume}"):
        try:
            return dict(api.inspect_volume(volume).get("Labels") or {})
        except NotFound:
            return None


def _remove(api: Any, volume: str) -> None:
    from docker.errors import NotFound

    with docker_errors(f"remove volume {volume}"), suppress(NotFound):
        api.remove_volume(volume)


def _copy(api: Any, one: Aside, src: str, dst: str) -> None:
    """`src`'s files into a new volume `dst` (the original's labels), durable before this returns; on
    failure `dst` is removed again."""
    if _labels(api, dst) is not None:
        raise BackupError(f"{one.node}: volume {dst} exists already; nothing was overwritten",
                          hint=f"look at it, then `docker volume rm {dst}` and run the restore again")
    with docker_errors(f"create volume {dst}"):
        api.create_volume(dst, labels=one.labels)
    try:
        if not _host_copy(api, src, dst):
            _helper_copy(api, one, src, dst)
    except BaseException:
        with suppress(Exception):
            _remove(api, dst)
        raise


def _host_copy(api: Any, src: str, dst: str) -> bool:
    """`cp -a` straight on the host, then the filesystem flushed; False: take the helper container."""
    try:
        a, b = host.local_mountpoint(api, src), host.local_mountpoint(api, dst)
        if a is None or b is None or any(b.iterdir()):
            return False
    except Exception:  # noqa: BLE001 - unreadable here or an engine error: take the helper container
        return False
    try:
        host.copy_tree(a, b)
    except OSError:
        with suppress(OSError):  # the helper's copy starts from an empty volume
            host.empty(b)
        return False
    disk.flush(b)
    return True


def _helper_copy(api: Any, one: Aside, src: str, dst: str) -> None:
    """The same copy in a one-shot container of the node's image, with no network, as root."""
    from streamctl.errors import BackendError

    binds = {src: {"bind": "/from", "mode": "ro"}, dst: {"bind": "/to", "mode": "rw"}}
    # the cluster's and this instance's, as its other one-shot containers (a leftover is the cluster's)
    labels = {k: v for k, v in one.labels.items() if k in (spec.LABEL_CLUSTER, LABEL_INSTANCE, LABEL_STATE_DIR)}
    what = f"copy volume {src} into {dst}"
    with docker_errors(what):
        cid = str(api.create_container(
            one.image, command=["sh", "-c", "cp -a /from/. /to/ && sync"], entrypoint=["/usr/bin/env"], user="0",
            labels=labels, host_config=api.create_host_config(binds=binds, network_mode="none"))["Id"])
    try:
        with docker_errors(what):
            api.start(cid)
            status = api.wait(cid, timeout=900).get("StatusCode", 1)
            if status != 0:
                tail = api.logs(cid, tail=15).decode(errors="replace").splitlines()
                raise BackendError(f"{what} failed (exit {status})", details=tail)
    finally:
        with docker_errors(f"remove the helper container of {what}"):
            api.remove_container(cid, force=True)
