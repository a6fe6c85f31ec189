"""pgBackRest's TLS server in a container, beside the container's own server: the shell lines the Swarm
backend's backed-up nodes and backup repository run (backends/swarm/backup.py), and a Docker HA member's command
when its group is backed up, so that a backup running in the leader's container reads a standby's data
(backup/docker.py). The server runs as postgres, started again should it end, with every setting on its command
line (no secret: the processes it starts read libpq's password from the environment or a file), and accepts only
certificates of the cluster CA with the common names it is given."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.ha_image import ENTRYPOINT
from streamctl.config.model import Engine
from streamctl.engines.pgbackrest import TLS_PORT, server_argv, stanza_name, stanza_prefix

if TYPE_CHECKING:
    from streamctl.config.members import Group
    from streamctl.config.model import Topology
    from streamctl.tls.material import NodeTls

USER = spec.SERVER_USER[Engine.POSTGRES]
HOME = spec.BACKUP_HOME
PASSFILE = f"{HOME}/pgpass"  # a member's: libpq's password file for the processes its server starts (backup/docker.py)


def prepare_line() -> str:
    """Shell: pgBackRest's directories in the volume, the server user's (the line runs as root)."""
    dirs = " ".join(shlex.quote(f"{HOME}/{d}") for d in ("", "log", "lock", "spool"))
    return f"install -d -o {USER} -g {USER} -m 0700 {dirs}"


def server_line(address: str, tls_dir: str, auth: list[str]) -> str:
    """Shell: the server as postgres, listening on `address`, accepting the clients `auth` names."""
    return (f"setpriv --reuid={USER} --regid={USER} --init-groups -- "
            f"{shlex.join(server_argv(HOME, address, tls_dir, auth))}")


def beside(env: str, address: str, tls_dir: str, auth: list[str]) -> str:
    """Shell, before the container's own server is exec'd: the directories, then the TLS server in the
    background, started again 2 s after it ends; `env`: assignments for its environment."""
    return f"{prepare_line()}; while :; do {env} {server_line(address, tls_dir, auth)}; sleep 2; done &"


def member_command(member: str, common_name: str, stanza: str) -> list[str]:
    """A Docker HA member's container command: the server on the member's own address on the cluster's network
    (its host name; its ports are never published), accepting only the group's certificate (the one the leader's
    pgBackRest presents) for the group's stanza, then the member image's entrypoint (Patroni as PID 1)."""
    line = beside(f"PGPASSFILE={PASSFILE}", member, spec.TLS_DIR, [f"{common_name}={stanza}"])
    return ["sh", "-c", f"{line} exec {ENTRYPOINT}"]


def member_commands(t: Topology, group: Group, tls: NodeTls | None, generation: str | None) -> dict[str, list[str]]:
    """Each member's command when the group is backed up and has its certificate (TLS on), else none: without
    TLS no server runs (an unauthenticated one never does), and backups come from the leader."""
    from streamctl.tls.certs import common_name

    if t.backup is None or not t.backup.enabled or tls is None:
        return {}
    cn = common_name(tls.cert) or group.node.name  # a certificate not issued yet: streamctl's names it so
    stanza = stanza_name(stanza_prefix(t.cluster, generation), group.node.name)
    return {m.name: member_command(m.name, cn, stanza) for m in group.members}


def serves(attrs: dict[str, Any]) -> bool:
    """Whether a member's container (its attributes) runs the server: one made before streamctl ran it does not
    until `up` recreates it."""
    config = attrs.get("Config") or {}
    return f"--tls-server-port={TLS_PORT}" in " ".join([*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])])
