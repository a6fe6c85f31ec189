"""A Citus group under HA leaving the cluster on Docker (`scale` shrinking): released first, then discarded
with its data (`down --volumes` discards every group the same way).

Patroni is each member container's PID 1, so it cannot be killed without taking its PostgreSQL along (the
container ends with its first process). Released, each member's Patroni is frozen instead: SIGSTOP sent by the
engine from the host's PID namespace, which a container's first process can neither catch nor ignore; its
PostgreSQL (Patroni's child) goes on serving the unregistration, no demotion is announced, and nothing renews
or writes the group's keys in etcd, which are then removed, so the coordinator's Patroni no longer registers
the group. Discarded, the members' containers are removed at once (SIGKILL: data about to be removed needs no
clean shutdown, and a frozen Patroni would not act on a stop request) with their volumes."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.config.members import Group
from streamctl.errors import BackendError
from streamctl.ha import dcs

if TYPE_CHECKING:
    from streamctl.backends.docker.ha import DockerHa

FREEZE, THAW = "SIGSTOP", "SIGCONT"


def release(ha: DockerHa, group: Group) -> None:
    """Every member's Patroni frozen (its PostgreSQL still running), then the group's keys removed from etcd."""
    for m in reversed(group.members):  # the standbys first: none sees its leader's Patroni gone quiet
        c = ha._find(m.name)
        if c is not None and c.status == "running":
            with docker_errors(f"freeze Patroni in {c.name}"):
                c.kill(signal=FREEZE)
    forget(ha, group)


def frozen(container: Any) -> bool:
    """Whether the container's Patroni is frozen (a release whose removal did not follow: an interrupted
    `scale`). The engine reports the container running either way; its process list (ps, run by the engine
    on its host) shows the stopped state."""
    with suppress(Exception):
        top = container.top(ps_args="-o pid,stat,args")  # the engine needs the pid column
        for row in top.get("Processes") or []:
            if len(row) >= 3 and "patroni" in row[2] and row[1].startswith("T"):
                return True
    return False


def thaw(container: Any) -> None:
    """A frozen Patroni resumes: with its group still in the topology, `up` brings it back (its keys are
    written again, its leader registered again by the coordinator's Patroni)."""
    with docker_errors(f"resume Patroni in {container.name}"):
        container.kill(signal=THAW)


def discard(ha: DockerHa, group: Group) -> None:
    """Every member's container removed at once (killed), then its volume; the group's keys leave etcd when it
    answers (best effort: `scale` released the group first, which removed them, and `down --volumes` removes
    etcd's data with it)."""
    for m in reversed(group.members):
        c = ha._find(m.name)
        if c is not None:
            with docker_errors(f"remove container {c.name}"):
                c.remove(v=True, force=True)
        ha.b._remove_volume(spec.volume_name(ha.t.cluster, m.name))
    with suppress(BackendError):
        forget(ha, group)


def forget(ha: DockerHa, group: Group) -> None:
    """A Citus group's keys removed from etcd while every etcd container runs (else they go with etcd)."""
    if group.number is not None and ha.etcd and all(ha._etcd_running(e) for e in ha.etcd):
        dcs.forget_group(ha.etcd, ha.t.cluster, group.number)
