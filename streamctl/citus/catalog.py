"""Every query streamctl makes of Citus's catalog (pg_dist_*, citus_*), as small functions over a connection.

With rebalance.py (the rebalancer's plan), jobs.py (its background jobs), placement.py (moving and isolating shards,
checksums) and tenants.py (hot titles), the only files that write Citus SQL: the layer, `scale`, `verify`,
`shards` and the gateway call these.
Addresses are (host, port) as Citus registered them, i.e. the nodes' internal (network) addresses.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql

Address = tuple[str, int]
Conn = Connection[Any]

NODES_TABLE = "pg_dist_node"  # named in messages, so an operator knows where to look

# The gateway's dashboard runs this one itself, on its async pool: placements per primary node.
PLACEMENTS_PER_NODE = """
SELECT n.nodename, n.nodeport,
       count(pl.shardid) FILTER (WHERE p.partmethod = 'h') AS distributed,
       count(pl.shardid) FILTER (WHERE p.partmethod = 'n' AND p.repmodel = 't') AS reference
FROM pg_dist_node n
LEFT JOIN pg_dist_placement pl ON pl.groupid = n.groupid
LEFT JOIN pg_dist_shard s ON s.shardid = pl.shardid
LEFT JOIN pg_dist_partition p ON p.logicalrelid = s.logicalrelid
WHERE n.noderole = 'primary'
GROUP BY n.nodename, n.nodeport
ORDER BY n.nodename, n.nodeport
"""


def _one(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    return conn.execute(query, params).fetchone()  # type: ignore[arg-type]


# -- extension and node-to-node credentials -----------------------------------------------------------
def extension_created(conn: Conn) -> bool:
    return _one(conn, "SELECT 1 FROM pg_extension WHERE extname = 'citus'") is not None


def loadable(conn: Conn) -> tuple[bool, bool]:
    """(the extension is installed, citus is in shared_preload_libraries): can this server run Citus?"""
    row = _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'citus'), "
                     "current_setting('shared_preload_libraries')")
    if row is None:
        return False, False
    return bool(row[0]), "citus" in [p.strip() for p in str(row[1]).split(",")]


def create_extension(conn: Conn) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS citus")


def authinfo_stored(conn: Conn, role: str, authinfo: str | None = None) -> bool:
    """Whether Citus has credentials for `role` (with authinfo: exactly these, for every node)."""
    if authinfo is None:
        return _one(conn, "SELECT 1 FROM pg_dist_authinfo WHERE rolename = %s", (role,)) is not None
    return _one(conn, "SELECT 1 FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = %s AND authinfo = %s",
                (role, authinfo)) is not None


def store_authinfo(conn: Conn, role: str, authinfo: str) -> None:
    """Nodes authenticate to each other with scram; pg_dist_authinfo gives Citus the password (every node)."""
    conn.execute("DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = %s", (role,))
    conn.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)",
                 (role, authinfo))


# -- nodes --------------------------------------------------------------------------------------------
def coordinator_address(conn: Conn) -> Address | None:
    row = _one(conn, "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0")
    return (row[0], row[1]) if row else None


def set_coordinator_host(conn: Conn, address: Address) -> None:
    conn.execute("SELECT citus_set_coordinator_host(%s, %s)", address)


def primary_workers(conn: Conn) -> dict[Address, bool]:
    """Registered primary workers -> whether each is active."""
    rows = conn.execute("SELECT nodename, nodeport, isactive FROM pg_dist_node "
                        "WHERE groupid <> 0 AND noderole = 'primary'").fetchall()
    return {(r[0], int(r[1])): bool(r[2]) for r in rows}


def group_leaders(conn: Conn) -> dict[int, Address]:
    """Each group's active primary (under HA, the leader Patroni registered) by group id."""
    rows = conn.execute("SELECT groupid, nodename, nodeport FROM pg_dist_node "
                        "WHERE noderole = 'primary' AND isactive").fetchall()
    return {int(r[0]): (r[1], int(r[2])) for r in rows}


def group_nodes(conn: Conn, groups: list[int]) -> list[tuple[int, Address, str]]:
    """(group, address, role) of every row of these groups in pg_dist_node (under HA: the leader and the
    standbys Patroni registered), secondaries first: a group's primary is removed last."""
    rows = conn.execute("SELECT groupid, nodename, nodeport, noderole::text FROM pg_dist_node "
                        "WHERE groupid = ANY(%s) ORDER BY noderole = 'primary', groupid, nodeid", (groups,)).fetchall()
    return [(int(r[0]), (r[1], int(r[2])), str(r[3])) for r in rows]


def registered_addresses(conn: Conn) -> set[Address]:
    """Every node in pg_dist_node, coordinator included."""
    return {(r[0], int(r[1])) for r in conn.execute("SELECT nodename, nodeport FROM pg_dist_node")}


def worker_rows(conn: Conn) -> list[tuple[Any, ...]]:
    """(nodename, nodeport, isactive, noderole, shouldhaveshards) of every non-coordinator node."""
    return conn.execute("SELECT nodename, nodeport, isactive, noderole::text, shouldhaveshards "
                        "FROM pg_dist_node WHERE groupid <> 0").fetchall()


def shard_holders(conn: Conn) -> list[Address]:
    """Active primaries that should hold shards, in registration order."""
    return [(r[0], int(r[1])) for r in conn.execute(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' "
        "AND shouldhaveshards ORDER BY nodeid").fetchall()]


def add_node(conn: Conn, address: Address) -> None:
    conn.execute("SELECT citus_add_node(%s, %s)", address)


def activate_node(conn: Conn, address: Address) -> None:
    conn.execute("SELECT citus_activate_node(%s, %s)", address)


def stop_placing_shards(conn: Conn, address: Address) -> None:
    """Mark a node to be drained: the next rebalance moves its shards away."""
    conn.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", address)


def secondaries(conn: Conn) -> list[Address]:
    """The nodes registered as secondaries (Patroni registers a group's standbys so)."""
    rows = conn.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'secondary' ORDER BY 1, 2")
    return [(r[0], int(r[1])) for r in rows.fetchall()]


def remove_node(conn: Conn, address: Address) -> None:
    conn.execute("SELECT citus_remove_node(%s, %s)", address)


# -- tables and distribution ----------------------------------------------------------------------------
def partitioning(conn: Conn) -> dict[str, str]:
    """Citus table -> partition method (h: hash-distributed, n: reference/local)."""
    rows = conn.execute("SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition")
    return {str(r[0]): str(r[1]) for r in rows.fetchall()}


def create_reference_table(conn: Conn, table: str) -> None:
    conn.execute("SELECT create_reference_table(%s)", (table,))


def set_shard_count(conn: Conn, count: int) -> None:
    conn.execute(sql.SQL("SET citus.shard_count = {}").format(sql.Literal(count)))


def create_distributed_table(conn: Conn, table: str, column: str, colocate_with: str) -> None:
    conn.execute("SELECT create_distributed_table(%s, %s, colocate_with => %s)", (table, column, colocate_with))


def table_layouts(conn: Conn) -> dict[str, tuple[Any, ...]]:
    """table -> (table, type, distribution column, colocation id, shard count), from citus_tables."""
    return {r[0]: r for r in conn.execute(
        "SELECT table_name::text, citus_table_type, distribution_column, colocation_id, shard_count "
        "FROM citus_tables").fetchall()}


def table_names(conn: Conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT table_name::text FROM citus_tables ORDER BY 1").fetchall()]


def row_counts(conn: Conn) -> dict[str, int]:
    """Rows of every Citus table (compared before and after shards move)."""
    out = {}
    for table in table_names(conn):
        row = _one(conn, f"SELECT count(*) FROM {table}")  # names come from the catalog
        out[table] = int(row[0]) if row else 0
    return out


def distribution_columns(conn: Conn) -> dict[str, str]:
    return dict(conn.execute("SELECT table_name::text, distribution_column FROM citus_tables").fetchall())


def table_type(conn: Conn, table: str) -> str | None:
    row = _one(conn, "SELECT citus_table_type FROM citus_tables WHERE table_name = %s::regclass", (table,))
    return None if row is None else str(row[0])


def distinct_keys(conn: Conn, table: str, column: str) -> int:
    """Distinct values of a distribution column (Citus pushes the count down to every shard)."""
    row = conn.execute(sql.SQL("SELECT count(DISTINCT {}) FROM {}").format(
        sql.Identifier(column), sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def tables_without_identity(conn: Conn) -> list[str]:
    """Distributed tables with neither a primary key nor a replica identity: shard moves would fail."""
    rows = conn.execute(
        "SELECT p.logicalrelid::regclass::text FROM pg_dist_partition p "
        "JOIN pg_class c ON c.oid = p.logicalrelid WHERE p.partkey IS NOT NULL "
        "AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS "
        "(SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))").fetchall()
    return [r[0] for r in rows]


# -- shards and placements ------------------------------------------------------------------------------
def shard_placements(conn: Conn, table: str | None = None) -> list[tuple[Any, ...]]:
    """(table, shardid, type, colocation id, nodename, nodeport, bytes) per placement, from citus_shards."""
    where, params = ("WHERE table_name = %s::regclass", (table,)) if table else ("", ())
    return conn.execute(
        "SELECT table_name::text, shardid, citus_table_type, colocation_id, nodename, nodeport, "
        f"coalesce(shard_size, 0) FROM citus_shards {where} ORDER BY 1, 2", params).fetchall()


def row_estimates(conn: Conn) -> dict[str, int]:
    """Planner row estimates of every Citus table: the sum of its shards' reltuples (one copy of a reference
    table), one statement per table run on the shards in parallel; cheap, unlike exact counts."""
    out = {}
    for table, kind in conn.execute("SELECT table_name::text, citus_table_type FROM citus_tables").fetchall():
        row = _one(conn, "SELECT coalesce(sum(greatest(result::float8, 0)), 0)::bigint, count(*) "
                         "FROM run_command_on_shards(%s::regclass, "
                         "$$SELECT reltuples FROM pg_class WHERE oid = '%%s'::regclass$$) WHERE success",
                   (table,))
        total = int(row[0]) if row else 0
        out[table] = total if kind != "reference" else total // max(1, int(row[1]) if row else 1)
    return out


def shard_row_counts(conn: Conn, table: str) -> list[tuple[Any, ...]]:
    """(shardid, success, result) of one count(*) per shard: exact rows, not estimates."""
    return conn.execute("SELECT shardid, success, result FROM run_command_on_shards(%s::regclass, "
                        "'SELECT count(*) FROM %%s')", (table,)).fetchall()


def shard_for_value(conn: Conn, table: str, value: str) -> int:
    """The shard of `table` that holds distribution value `value` (raises psycopg.Error on a bad value)."""
    row = _one(conn, "SELECT get_shard_id_for_distribution_column(%s::regclass, %s::text)", (table, value))
    assert row is not None
    return int(row[0])


def shard_nodes(conn: Conn, shard: int) -> list[tuple[Any, ...]]:
    """(shard_name, nodename, nodeport) of every placement of one shard."""
    return conn.execute("SELECT shard_name, nodename, nodeport FROM citus_shards WHERE shardid = %s "
                        "ORDER BY nodename, nodeport", (shard,)).fetchall()


def placement_count(conn: Conn) -> int:
    row = _one(conn, "SELECT count(*) FROM pg_dist_placement")
    return int(row[0]) if row else 0


def placements_off_active_nodes(conn: Conn) -> list[tuple[Any, ...]]:
    """(shardid, table, groupid, nodename, nodeport, isactive) of placements on no node or an inactive one."""
    return conn.execute(
        "SELECT p.shardid, s.logicalrelid::text, p.groupid, n.nodename, n.nodeport, n.isactive "
        "FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid) "
        "LEFT JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary' "
        "WHERE n.nodeid IS NULL OR NOT n.isactive ORDER BY 1").fetchall()


def distributed_placements_on(conn: Conn, address: Address) -> int:
    """Distributed-table placements on a node (reference-table copies go with citus_remove_node)."""
    row = _one(conn,
               "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) "
               "JOIN pg_dist_shard s USING (shardid) JOIN pg_dist_partition t USING (logicalrelid) "
               "WHERE n.nodename = %s AND n.nodeport = %s AND t.partkey IS NOT NULL", address)
    return int(row[0]) if row else 0
