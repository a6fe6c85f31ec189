"""Worker registration as `scale` changes it: register, drain flag, unregister, what is left on a node,
and the tables a logical shard move could not carry."""

from __future__ import annotations

from typing import Any

from psycopg import Connection


def registered(conn: Connection[Any]) -> set[tuple[str, int]]:
    return {(str(r[0]), int(r[1])) for r in conn.execute("SELECT nodename, nodeport FROM pg_dist_node")}


def add(conn: Connection[Any], address: tuple[str, int]) -> None:
    conn.execute("SELECT citus_add_node(%s, %s)", address)


def stop_holding_shards(conn: Connection[Any], address: tuple[str, int]) -> None:
    conn.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", address)


def remove(conn: Connection[Any], address: tuple[str, int]) -> None:
    conn.execute("SELECT citus_remove_node(%s, %s)", address)


def placements_on(conn: Connection[Any], address: tuple[str, int]) -> int:
    """Distributed-table placements on a node (reference-table copies go with citus_remove_node)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) "
        "JOIN pg_dist_shard s USING (shardid) JOIN pg_dist_partition t USING (logicalrelid) "
        "WHERE n.nodename = %s AND n.nodeport = %s AND t.partkey IS NOT NULL", address).fetchone()
    return int(row[0]) if row else 0


def no_replica_identity(conn: Connection[Any]) -> list[str]:
    """Distributed tables without a primary key or replica identity (logical moves cannot carry them)."""
    return [str(r[0]) for r in conn.execute(
        "SELECT p.logicalrelid::regclass::text FROM pg_dist_partition p "
        "JOIN pg_class c ON c.oid = p.logicalrelid WHERE p.partkey IS NOT NULL "
        "AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS "
        "(SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))").fetchall()]
