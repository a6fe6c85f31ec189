"""The high-availability layout a topology describes (`ha:`): each Citus group (0 the coordinator, i the
worker i) and the analytics primary's group (a plain Patroni cluster, after the Citus groups) with their
members, their PostgreSQL and REST ports, and the etcd members. Pure, so the checks and every backend read
one layout.

A group's first member is the node the topology names, on its own port; its standbys are NAME-2, NAME-3...
on ports taken from `ha.port` up, group after group; every member's REST port is taken from `ha.rest_port`
up in the same order. Which member leads is Patroni's choice at any moment, not this layout's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from streamctl.config.nodes import Node, Role
from streamctl.config.schema import Topology
from streamctl.config.settings import HaSpec


@dataclass(frozen=True)
class Member:
    """One PostgreSQL server of a group, run by its own Patroni."""

    name: str
    group: int | None  # the Citus group (None: the analytics primary's)
    node: Node  # the group's node in the topology (role, bind, database, settings)
    port: int
    rest_port: int
    port_path: str  # the key its port comes from, for messages
    rest_path: str


@dataclass(frozen=True)
class Group:
    """A group under HA: the node the topology names and the members that take turns at leading it."""

    node: Node
    number: int | None  # the Citus group (citus.group in Patroni's configuration); None: the analytics primary's
    standbys: int
    standbys_path: str  # the key that sets its number of standbys
    members: tuple[Member, ...]

    @property
    def citus(self) -> bool:
        """A Citus group (Patroni in Citus mode registers its leader in pg_dist_node), not the analytics one."""
        return self.number is not None


@dataclass(frozen=True)
class EtcdMember:
    name: str
    host: str
    port: int  # clients
    peer_port: int


def group_standbys(ha: HaSpec, role: Role) -> tuple[int, str]:
    """How many standbys a group of this role has, and the key that says so."""
    kind = {Role.COORDINATOR: "coordinator", Role.WORKER: "workers"}.get(role, "analytics")
    own = getattr(ha, kind).standbys
    return (own, f"ha.{kind}.standbys") if own is not None else (ha.standbys, "ha.standbys")


def may_lead(t: Topology, node: Node) -> bool:
    """Whether HA can cover this node, so turning it on or off converts its data: a Citus node or the analytics
    primary that streamctl provisions."""
    return not node.is_external and (t.runs_citus(node.role) or node.role is Role.ANALYTICS_PRIMARY)


def ha_groups(t: Topology, hosts: Mapping[str, str] | None = None) -> list[Group]:
    """Every Citus group with its members (none without Citus), then the analytics primary's when
    `ha.analytics.standbys` gives it standbys; none when `ha` is off. The analytics group takes the first
    ports of `ha.port` and `ha.rest_port`, then the Citus groups in order, so a scale moves no port. `hosts`:
    member name -> the address streamctl reaches it at when that is not its node's (Swarm: its host's;
    `StateStore.pinned`)."""
    if not t.ha_on:
        return []
    assert t.ha is not None
    groups: list[Group] = []
    next_port, next_rest = t.ha.port, t.ha.rest_port
    led: list[tuple[int | None, Node]] = list(enumerate(
        n for n in t.nodes() if n.role in (Role.COORDINATOR, Role.WORKER))) if t.citus else []
    primary = next((n for n in t.nodes() if n.role is Role.ANALYTICS_PRIMARY), None)
    if primary is not None and t.ha.analytics.standbys:  # opt-in: ha.standbys does not reach it
        # its ports first: `scale` adds and removes worker groups at the end, and moves no other group's ports
        led.insert(0, (None, primary))
    for number, node in led:
        standbys, path = group_standbys(t.ha, node.role)
        members = []
        for k in range(standbys + 1):
            port, port_path = (node.port, f"{node.yaml_path}.port") if k == 0 else \
                (next_port, f"ha.port + {next_port - t.ha.port}" if next_port != t.ha.port else "ha.port")
            rest_path = f"ha.rest_port + {next_rest - t.ha.rest_port}" if next_rest != t.ha.rest_port \
                else "ha.rest_port"
            name = node.name if k == 0 else f"{node.name}-{k + 1}"
            at = replace(node, bind=hosts[name]) if hosts and hosts.get(name) else node
            members.append(Member(name, number, at, port, next_rest, port_path, rest_path))
            next_port += k > 0
            next_rest += 1
        groups.append(Group(node, number, standbys, path, tuple(members)))
    return groups[1:] + groups[:1] if groups and groups[0].number is None else groups  # shown after Citus's


def citus_groups(t: Topology) -> list[Group]:
    """The Citus groups under HA (what pg_dist_node registers), without the analytics primary's."""
    return [g for g in ha_groups(t) if g.citus]


def etcd_members(t: Topology, hosts: Mapping[str, str] | None = None) -> list[EtcdMember]:
    """The etcd members Patroni's DCS is made of (none when `ha` is off); `hosts` as for `ha_groups`."""
    if not t.ha_on:
        return []
    assert t.ha is not None
    e, hosts = t.ha.etcd, hosts or {}
    host = "127.0.0.1" if t.bind in ("0.0.0.0", "::") else t.bind
    return [EtcdMember(f"etcd-{i + 1}", hosts.get(f"etcd-{i + 1}") or host, e.port + i, e.first_peer_port + i)
            for i in range(e.members)]


def member_addresses(t: Topology, name: str, hosts: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    """Every member's address of the group node `name` leads (clients connect to the one that takes writes);
    [] for a node that is not under HA. `hosts`: member name -> the address it is reached at when that is not
    its node's (on Swarm, the host its service is pinned to)."""
    group = next((g for g in ha_groups(t, hosts) if g.node.name == name), None)
    return [(m.node.host, m.port) for m in group.members] if group else []


def peer_addresses(t: Topology, name: str, internal_host: str, internal_port: int) -> list[tuple[str, int]]:
    """Every member's address of the group node `name` leads, as the other nodes reach it (a replica's
    subscription, the coordinator's FDW); [] for a node that is not under HA. A node reached by a name on a
    container network (Docker: `internal_host` is its name; Swarm: its service's, `<cluster>-<name>`) has its
    members there by their member names on the same port (Patroni's connect_address, each member's network
    alias); elsewhere they are where streamctl reaches them."""
    group = next((g for g in ha_groups(t) if g.node.name == name), None)
    if group is None:
        return []
    if internal_host in (group.node.name, f"{t.cluster}-{group.node.name}"):
        return [(m.name, internal_port) for m in group.members]
    return [(m.node.host, m.port) for m in group.members]
