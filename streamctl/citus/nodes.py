"""Citus's nodes: the coordinator's connection, worker addresses, worker registration, and back to names."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from psycopg import Connection

from streamctl.citus import catalog
from streamctl.citus.catalog import Address
from streamctl.citus.placement import citus_errors
from streamctl.config.members import citus_groups
from streamctl.config.model import Node, Role, Topology
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, NotFoundError, PreflightError, RefusedError
from streamctl.state import Endpoint


def worker_address(ctx: ClusterContext, node: Node) -> Address:
    """Where the coordinator reaches a node: its address on the cluster network (as registered)."""
    ep = ctx.endpoint(node.name)
    return ep.internal_host, ep.internal_port


def node_names(endpoints: Mapping[str, Endpoint], topology: Topology | None = None) -> dict[Address, str]:
    """(host, port) as Citus registered a node -> its topology name (internal address first, then external);
    under HA (the topology given), every member's address names its group."""
    out: dict[Address, str] = {}
    for name, ep in endpoints.items():
        out[(ep.internal_host, ep.internal_port)] = name
    for name, ep in endpoints.items():
        out.setdefault((ep.host, ep.port), name)
    out.update(member_names(topology) if topology is not None else {})
    return out


CONTAINER_PG_PORT = 5432  # PostgreSQL's port inside a Docker member's container


def member_names(topology: Topology) -> dict[Address, str]:
    """Under HA: each member's address -> its group's node name (as a local process: the topology's host and
    the member's port; in a container: its network name and PostgreSQL's port, as Patroni registers it)."""
    return {a: g.node.name for g in citus_groups(topology) for m in g.members
            for a in ((m.node.host, m.port), (m.name, CONTAINER_PG_PORT))}


def label(names: Mapping[Address, str], host: str, port: int) -> str:
    """A node's topology name, or host:port for a node the topology does not know."""
    return names.get((host, int(port)), f"{host}:{port}")


def coordinator_conn(ctx: ClusterContext) -> Connection[Any]:
    """A connection to the coordinator's metadata database; refuses clearly when Citus is off."""
    if not ctx.topology.citus:
        raise PreflightError("Citus is disabled in this topology (metadata.citus.enabled: false)",
                             hint="shards and scaling need Citus; enable it and run `streamctl up`")
    coord = ctx.first(Role.COORDINATOR)
    assert coord is not None
    conn = ctx.pg_connect(coord.name, ctx.topology.metadata.database)
    if not catalog.extension_created(conn):
        conn.close()
        raise PreflightError("the citus extension is not created in the coordinator's database",
                             hint="run `streamctl up` to configure the cluster")
    return conn


def registration_pending(conn: Connection[Any], workers: dict[Address, str]) -> list[str]:
    """What `register_workers` would do for these workers (address -> name)."""
    registered = catalog.primary_workers(conn)
    out = []
    for (host, port), name in workers.items():
        if (host, port) not in registered:
            out.append(f"register {name} ({host}:{port})")
        elif not registered[(host, port)]:
            out.append(f"activate {name}")
    return out


# A name a cluster network has only just learned (Swarm's DNS learns a new task's name by gossip, a moment
# after the task runs): the coordinator is asked again for this long before the error stands.
NAME_SETTLE_SECONDS = 30.0


def register_workers(conn: Connection[Any], addresses: list[Address]) -> None:
    """Idempotent, the one way a worker joins: add it to the coordinator, or activate it if it is inactive."""
    registered = catalog.primary_workers(conn)
    for address in addresses:
        with citus_errors(f"Citus did not register the worker at {address[0]}:{address[1]}",
                          hint="is it running, with the citus extension and the node-to-node credentials? "
                               "see the coordinator's log"):
            if address not in registered:
                _add_once_resolvable(conn, address)
            elif not registered[address]:
                catalog.activate_node(conn, address)


def _add_once_resolvable(conn: Connection[Any], address: Address) -> None:
    """citus_add_node, asked again while the coordinator cannot resolve the new name yet (each failed call
    rolled back whole: autocommit); any other error, or the name still unknown after the settle time, raises."""
    import psycopg

    deadline = time.monotonic() + NAME_SETTLE_SECONDS
    while True:
        try:
            catalog.add_node(conn, address)
            return
        except psycopg.Error as exc:
            if "could not translate host name" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(1.0)


def ha_group_refusal(ctx: ClusterContext) -> RefusedError | None:
    """Under ha, Patroni's Citus mode keys each worker group by its place in the topology (worker-i: group i)
    and registers its leader under that group id: a worker Citus registered under another one (a scale down
    and up again gives a new id) would be registered twice. Read on the coordinator when it answers (before
    ha is turned on for a cluster with data; a cluster Patroni registered agrees with it by construction)."""
    coordinator = ctx.first(Role.COORDINATOR)
    if coordinator is None or coordinator.is_external:
        return None
    try:
        with ctx.pg_connect(coordinator.name, ctx.topology.metadata.database) as conn:
            registered = catalog.group_leaders(conn) if catalog.extension_created(conn) else {}
    except (BackendError, NotFoundError):
        return None  # not made or not running yet: Patroni makes or registers it
    known = ctx.endpoints()  # a container's address is its network name (what Citus registered), not the host's

    def addresses(node: Node) -> set[Address]:
        ep = known.get(node.name)
        return {(node.host, node.port), *([(ep.internal_host, ep.internal_port)] if ep else [])}

    wrong = [f"{g.node.name} is group {gid} in pg_dist_node, group {g.number} for Patroni"
             for g in citus_groups(ctx.topology) for gid, address in registered.items()
             if address in addresses(g.node) and gid != g.number]
    if not wrong:
        return None
    return RefusedError("turning ha on: Citus's group ids and the topology's worker order differ",
                        details=wrong, hint="Patroni cannot take these groups over; remove the ha section (the "
                                            "cluster keeps running as it is)")
