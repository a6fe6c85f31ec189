"""Backups of groups under high availability (local backend): a group's stanza lists every member (pgBackRest
finds the leader itself at each command), archive_command is Patroni's (streamctl.ha.patroni), the base
backup comes from a standby that streams (`--backup-standby=y`), else from the leader, and a restored copy
of a member's data becomes a plain node (Patroni's postgresql.conf replaced by the node's own)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.config.members import Group, ha_groups
from streamctl.errors import RefusedError
from streamctl.ha import rest

if TYPE_CHECKING:
    from streamctl.config.model import Node, Topology
    from streamctl.context import ClusterContext

PATRONI_BASE = "postgresql.base.conf"  # where Patroni keeps initdb's postgresql.conf, which it includes


def group_of(t: Topology, node: Node) -> Group | None:
    return next((g for g in ha_groups(t) if g.node.name == node.name), None)


def stanza_lines(place: Any, group: Group) -> list[str]:
    """pg1.., one index per member in the layout's order; which one leads is pgBackRest's to find out."""
    lines = []
    for i, member in enumerate(group.members, start=1):
        path, port, sock = place.member_lines(group.node, member)
        lines += [f"pg{i}-path={path}", f"pg{i}-port={port}", f"pg{i}-socket-path={sock}"]
    return lines


def archiving_on(command: str, stanza: str) -> bool:
    """Whether the server's archive_command (Patroni's, member-specific) pushes into `stanza`."""
    return "archive-push" in command and f"--stanza={stanza} " in command


def backup_source(ctx: ClusterContext, group: Group) -> tuple[list[str], str]:
    """pgBackRest's option and what to say: from a streaming standby when one is, else from the leader
    (pgBackRest 2.45 fails a `backup-standby=y` backup that finds no standby)."""
    states = rest.group_members(group.members, ctx.ca_path() if ctx.tls_on else None)
    streaming = [s.name for s in states if s.ha_role != "leader" and s.state == "streaming"]
    leader = next((s.name for s in states if s.ha_role == "leader"), "?")
    if streaming:
        return ["--backup-standby=y"], f"from a standby ({', '.join(streaming)} streaming from {leader})"
    return ["--backup-standby=n"], f"from the leader {leader} (no standby streams)"


def refuse_in_place(t: Topology, what: str) -> None:
    """Restoring into a cluster's own groups under HA (`--in-place`, `up --from-backup`) is not built: Patroni
    would have to be bootstrapped from the restored data. The refusal says what works instead."""
    if not ha_groups(t):
        return
    if what.startswith("up"):
        hint = ("bring the cluster up from the set without HA: a copy of the topology without its `ha:` section, "
                "then `streamctl up -f COPY --from-backup NAME` (each group comes back as one plain node; "
                "turning ha on for a cluster that holds data is not built)")
    else:
        hint = ("restore into a new cluster beside this one instead: `streamctl restore --point NAME --into NEW` "
                "(each group comes back as one plain node, its topology NEW.yaml without `ha:`), then move "
                "clients to it")
    raise RefusedError(f"{what} under ha is not built yet; nothing was changed", hint=hint)


def plain_conf(data: Path, chown: Any) -> bool:
    """A member's restored data directory made a plain node's: Patroni's postgresql.conf (its member's port,
    paths, archive_command) replaced by initdb's, which Patroni kept aside, including the node's managed
    settings (streamctl.conf) as the local backend's nodes do. False when the data was not Patroni's."""
    base = data / PATRONI_BASE
    if not base.exists():
        return False
    conf = data / "postgresql.conf"
    conf.write_text(base.read_text() + "\ninclude_if_exists = 'streamctl.conf'\n")
    chown(conf)
    base.unlink()
    for leftover in ("patroni.dynamic.json",):
        (data / leftover).unlink(missing_ok=True)
    return True


def member_ports(t: Topology) -> dict[int, str]:
    """Every member's port in a cluster under HA, with its group's node: the catalog of a copy names the
    group's leader then (and its standbys as secondaries), whichever member the files came from."""
    return {m.port: g.node.name for g in ha_groups(t) for m in g.members}
