"""Backups of groups under high availability: a group's stanza lists every member (pgBackRest finds the leader
itself at each command; on Docker the member it runs in, backup/docker.py), archive_command is Patroni's
(streamctl.ha.patroni), the base backup comes from a standby that streams (`--backup-standby=y`), else from the
leader, and a restored copy of a member's data becomes a plain node (Patroni's postgresql.conf replaced by the
node's own), which `up` then makes its group's leader again when the restored cluster is under HA
(backends/local/ha_convert.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.config.members import Group, etcd_members, ha_groups
from streamctl.ha import rest

if TYPE_CHECKING:
    from streamctl.config.model import Node, Topology
    from streamctl.context import ClusterContext

PATRONI_BASE = "postgresql.base.conf"  # where Patroni keeps initdb's postgresql.conf, which it includes


def group_of(t: Topology, node: Node) -> Group | None:
    return next((g for g in ha_groups(t) if g.node.name == node.name), None)


def stanza_lines(place: Any, group: Group, user: str, database: str | None) -> list[str]:
    """pg1.., one index per member in the layout's order (which one leads is pgBackRest's to find out); a place
    whose pgBackRest sees one member's data only (Docker: each in its container) lists that one (`group_lines`)."""
    own = getattr(place, "group_lines", None)
    hosts = own(group) if own else [place.member_lines(group.node, m) for m in group.members]
    lines = []
    for i, (path, port, sock) in enumerate(hosts, start=1):
        lines += [f"pg{i}-path={path}", f"pg{i}-port={port}", f"pg{i}-socket-path={sock}"]
    return lines + [f"pg{i}-{k}={v}" for i in range(1, len(hosts) + 1) for k, v in (("user", user),
                                                                                   ("database", database))]


def archiving_on(command: str, stanza: str) -> bool:
    """Whether the server's archive_command (Patroni's, member-specific) pushes into `stanza`."""
    return "archive-push" in command and f"--stanza={stanza} " in command


def backup_source(ctx: ClusterContext, group: Group, place: Any) -> tuple[list[str], str]:
    """pgBackRest's options and what to say: from a streaming standby when one is and the place's pgBackRest
    reaches its data (`place.standby_hosts`: the options that reach it, or why not), else from the leader."""
    states = rest.group_members(group.members, ctx.ca_path() if ctx.tls_on else None)
    streaming = [s.name for s in states if s.ha_role != "leader" and s.state == "streaming"]
    leader = next((s.name for s in states if s.ha_role == "leader"), "?")
    return choose_source(leader, streaming, place.standby_hosts(group, streaming) if streaming else ([], None))


def choose_source(leader: str, streaming: list[str], reach: tuple[list[str], str | None]) -> tuple[list[str], str]:
    """`reach`: the options that reach the standbys' data, or why it cannot be read. From the leader when no
    standby streams: pgBackRest 2.45 fails a `backup-standby=y` backup that finds no standby."""
    options, why_not = reach
    if not streaming:
        return ["--backup-standby=n"], f"from the leader {leader} (no standby streams)"
    if why_not is not None:
        return ["--backup-standby=n"], f"from the leader {leader} ({', '.join(streaming)} streaming, but {why_not})"
    return ["--backup-standby=y", *options], f"from a standby ({', '.join(streaming)} streaming from {leader})"


def patroni_paths(t: Topology, backend: Any, node: Node) -> list[Path]:
    """An in-place restore keeps these aside besides the node's data: its Patroni configuration (so that `up`
    finds plain data to convert) and its standbys' directories (they are cloned again from the restored data)."""
    group = group_of(t, node)
    if group is None:
        return []
    first = backend.member_paths(node, group.members[0])
    return [first.config_file, *(backend.member_paths(node, m).dir for m in group.members[1:])]


def etcd_aside(t: Topology, backend: Any, suffix: str) -> tuple[Path, Path | None]:
    """etcd's directory renamed beside itself (its keys name the groups as they were: Patroni must find none),
    with where it went; None when there is nothing to keep."""
    from streamctl.backends.local.ha import etcd_root

    etcd = etcd_root(backend.home.path)
    if not ha_groups(t) or not etcd.exists():
        return etcd, None
    aside = etcd.with_name(etcd.name + suffix)
    etcd.rename(aside)
    return etcd, aside


def ha_ports(t: Topology) -> set[int]:
    """Every port the cluster's `ha:` layout uses: members' PostgreSQL and REST, etcd's clients and peers."""
    ports = {p for g in ha_groups(t) for m in g.members for p in (m.port, m.rest_port)}
    return ports | {p for e in etcd_members(t) for p in (e.port, e.peer_port)}


def move_ha_ports(raw: dict[str, Any], t: Topology, free: Callable[[int], int]) -> None:
    """The `ha:` section of a restored cluster's topology (`raw`, the source's YAML): free ports of its own (`free(n)`:
    the first of n) for the standbys' PostgreSQL, every member's REST API and etcd; every group stays under ha,
    the analytics primary's too (its restored data becomes its group's leader: backends/local/ha_convert.py)."""
    section = raw["ha"] if isinstance(raw.get("ha"), dict) else {}
    raw["ha"] = section
    groups = ha_groups(t)
    section["port"] = free(max(1, sum(len(g.members) - 1 for g in groups)))
    section["rest_port"] = free(max(1, sum(len(g.members) for g in groups)))
    etcd = section["etcd"] if isinstance(section.get("etcd"), dict) else {}
    section["etcd"] = etcd
    assert t.ha is not None
    first = free(2 * t.ha.etcd.members)
    etcd["port"], etcd["peer_port"] = first, first + t.ha.etcd.members


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


def standby_names(t: Topology, hosts: dict[str, str]) -> dict[str, str]:
    """Each standby member's name -> its restored group node's network name (`hosts`): on a container network
    pg_dist_node names a group's leader by its member's name, and the restored data leads as the first member."""
    return {m.name: hosts[g.node.name] for g in ha_groups(t) if g.node.name in hosts for m in g.members[1:]}


def patroni_roles(rn: Any, tctx: ClusterContext) -> None:
    """The roles Patroni logs in as, with the restored cluster's passwords (the copy holds the source's), on a
    restored node that Patroni starts from its data as it is (Docker)."""
    from streamctl.ha.roles import ensure_patroni_roles
    from streamctl.ha.secrets import ha_secrets

    with rn.connect() as conn:
        ensure_patroni_roles(conn, ha_secrets(tctx.store.root, create=True))


def member_ports(t: Topology) -> dict[int, str]:
    """Every member's port in a cluster under HA, with its group's node: the catalog of a copy names the
    group's leader then (and its standbys as secondaries), whichever member the files came from."""
    return {m.port: g.node.name for g in ha_groups(t) for m in g.members}
