"""Citus around backups: the cluster-wide restore point, and making a restored copy its own cluster
(pg_dist_node rewritten offline, then the prepared transactions the point left behind resolved)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql


def create_restore_point(conn: Connection[Any], name: str) -> str:
    """citus_create_restore_point on the coordinator: one named WAL record on every node, written while
    distributed commits are blocked, so the nodes recovered to it agree. Returns its LSN on the coordinator."""
    row = conn.execute("SELECT citus_create_restore_point(%s)::text", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def node_addresses(conn: Connection[Any]) -> list[tuple[str, int]]:
    return [(str(r[0]), int(r[1])) for r in conn.execute(
        "SELECT nodename, nodeport FROM pg_dist_node ORDER BY nodeid").fetchall()]


def rewrite_node_addresses(conn: Connection[Any], moves: dict[int, tuple[str, int]],
                           drop_secondaries: bool = False) -> int:
    """Point pg_dist_node at the restored nodes (keyed by the port each had: local nodes share a host),
    on a server running WITHOUT Citus loaded, so nothing reaches the original nodes the catalog still
    names. session_replication_role=replica skips Citus's cache-invalidation triggers, which refuse to
    run when the library is not loaded. Every node holds this metadata (workers have it synced), so this
    runs on each. `drop_secondaries`: the copy of a cluster whose standbys Patroni registered (the copy has
    none). Returns the rows changed."""
    row = conn.execute("SELECT to_regclass('pg_catalog.pg_dist_node') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    changed = 0
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        if drop_secondaries:
            changed += conn.execute("DELETE FROM pg_catalog.pg_dist_node WHERE noderole = 'secondary'").rowcount
        # through a temporary column of old ports, so a new port equal to another node's old one is safe
        for old_port, (host, port) in moves.items():
            cur = conn.execute(sql.SQL("UPDATE pg_catalog.pg_dist_node SET nodename = %s, nodeport = %s "
                                       "WHERE nodeport = %s"), (host, -port, old_port))
            changed += cur.rowcount
        conn.execute("UPDATE pg_catalog.pg_dist_node SET nodeport = -nodeport WHERE nodeport < 0")
    return changed


def rename_nodes(conn: Connection[Any], names: dict[str, str]) -> int:
    """Point pg_dist_node at the restored nodes by name (Swarm: every node listens on the same port under
    its service's name, which carries the cluster's), under the same conditions as rewrite_node_addresses."""
    row = conn.execute("SELECT to_regclass('pg_catalog.pg_dist_node') IS NOT NULL").fetchone()
    if row is None or not row[0] or not names:
        return 0
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        cur = conn.execute("UPDATE pg_catalog.pg_dist_node AS n SET nodename = m.new FROM "
                           "unnest(%s::text[], %s::text[]) AS m(old, new) WHERE n.nodename = m.old",
                           (list(names), list(names.values())))
        return cur.rowcount


def recover_prepared_transactions(conn: Connection[Any]) -> int:
    """Commit or abort the prepared transactions a restore point can leave on workers (coordinator)."""
    row = conn.execute("SELECT recover_prepared_transactions()").fetchone()
    return int(row[0]) if row else 0
