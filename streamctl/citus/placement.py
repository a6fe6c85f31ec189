"""Shard placements and the operations on them: one shard group's placements, a move, a tenant's
isolation, per-shard row counts and the row counts and checksums that prove nothing was lost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection, sql

from streamctl.errors import ExitCode, NotFoundError, RefusedError, StreamctlError
from streamctl.pgconn import LockWaitTimeout, translate_db_error


class ShardOperationError(StreamctlError, exit_code=ExitCode.RUNTIME):
    """Citus refused or failed a shard operation; its own message is kept."""


@contextmanager
def citus_errors(what: str, hint: str | None = None) -> Iterator[None]:
    """A database error inside a shard operation (placement, rebalance, node removal) as a clear error:
    a lock wait that ran out as LockWaitTimeout (exit 6), anything else as ShardOperationError (exit 5)
    with Citus's own first line; errors of ours pass through."""
    try:
        yield
    except psycopg.Error as exc:
        err = translate_db_error(what, exc)
        if isinstance(err, LockWaitTimeout):
            raise err from None
        raise ShardOperationError(err.message, hint=hint or err.hint or "see the coordinator's log") from None


@dataclass(frozen=True)
class DistributedTable:
    table: str
    column: str
    column_type: str
    colocation_id: int


@dataclass(frozen=True)
class Placement:
    """One shard of one table on one node, with its hash range and size."""

    table: str
    shard_id: int
    node: tuple[str, int]
    min_value: str | None
    max_value: str | None
    bytes: int


@dataclass(frozen=True)
class TableSum:
    """Rows and an order-independent content checksum of a whole table (sum of 64-bit row hashes)."""

    rows: int
    checksum: str


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def distributed_table(conn: Connection[Any], table: str) -> DistributedTable:
    """The hash-distributed table `table`, or a clear error naming what it is instead."""
    row = conn.execute(
        "SELECT t.citus_table_type, t.distribution_column, format_type(a.atttypid, a.atttypmod), "
        "t.colocation_id FROM citus_tables t LEFT JOIN pg_attribute a ON a.attrelid = t.table_name "
        "AND a.attname = t.distribution_column WHERE t.table_name::text = %s", (table,)).fetchone()
    if row is None:
        raise NotFoundError(f"{table} is not a Citus table", hint="list them with `streamctl shards`")
    if row[0] != "distributed" or row[2] is None:
        raise RefusedError(f"{table} is a {row[0]} table, not a distributed one: it has no tenants to isolate",
                           hint="use a table distributed by content_id, e.g. content_metadata")
    return DistributedTable(table, str(row[1]), str(row[2]), int(row[3]))


def check_key(conn: Connection[Any], table: DistributedTable, key: str) -> None:
    """The key must be a value of the distribution column's type (checked before anything runs)."""
    try:
        conn.execute(sql.SQL("SELECT CAST(%s AS {})").format(sql.SQL(table.column_type)), (key,))
    except psycopg.Error as exc:
        raise RefusedError(f"{key!r} is not a valid {table.column_type} for {table.table}.{table.column}: "
                           f"{_first_line(exc)}", hint=f"give a {table.column} value") from None


def key_rows(conn: Connection[Any], table: str, column: str, key: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
        sql.Identifier(table), sql.Identifier(column)), (key,)).fetchone()
    return int(row[0]) if row else 0


def shard_of(conn: Connection[Any], table: str, key: str) -> int:
    row = conn.execute("SELECT get_shard_id_for_distribution_column(%s::regclass, %s::text)",
                       (table, key)).fetchone()
    assert row is not None
    return int(row[0])


def shard_group(conn: Connection[Any], shard_id: int) -> list[Placement]:
    """Every placement of the shard and its colocated shards (what one move carries), or NotFound."""
    kind = conn.execute("SELECT t.citus_table_type FROM pg_dist_shard s JOIN citus_tables t "
                        "ON t.table_name = s.logicalrelid WHERE s.shardid = %s", (shard_id,)).fetchone()
    if kind is None:
        raise NotFoundError(f"shard {shard_id} does not exist",
                            hint="see shard ids with `streamctl shards rebalance --dry-run` or citus_shards")
    if kind[0] != "distributed":
        raise RefusedError(f"shard {shard_id} belongs to a {kind[0]} table: it has a copy on every node, "
                           "there is nothing to move", hint="move a shard of a distributed table")
    rows = conn.execute(
        "SELECT s.logicalrelid::regclass::text, s.shardid, n.nodename, n.nodeport, s.shardminvalue, "
        "s.shardmaxvalue, coalesce(c.shard_size, 0) FROM unnest(get_colocated_shard_array(%s)) g(shardid) "
        "JOIN pg_dist_shard s ON s.shardid = g.shardid JOIN pg_dist_placement p ON p.shardid = s.shardid "
        "JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary' "
        "LEFT JOIN citus_shards c ON c.shardid = s.shardid AND c.nodename = n.nodename "
        "AND c.nodeport = n.nodeport ORDER BY 1", (shard_id,)).fetchall()
    return [Placement(str(r[0]), int(r[1]), (str(r[2]), int(r[3])), r[4], r[5], int(r[6])) for r in rows]


def isolated_shards(conn: Connection[Any]) -> dict[str, int]:
    """Hash-distributed table -> shards holding a single hash value (titles given a shard of their own)."""
    return {str(r[0]): int(r[1]) for r in conn.execute(
        "SELECT s.logicalrelid::regclass::text, count(*) FROM pg_dist_shard s JOIN pg_dist_partition p "
        "USING (logicalrelid) WHERE p.partmethod = 'h' AND s.shardminvalue = s.shardmaxvalue GROUP BY 1")}


def shard_nodes(conn: Connection[Any]) -> list[tuple[str, int]]:
    """Active primary nodes that may hold shards (where a move can go)."""
    return [(str(r[0]), int(r[1])) for r in conn.execute(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' "
        "AND shouldhaveshards ORDER BY nodeid").fetchall()]


def move(conn: Connection[Any], shard_id: int, source: tuple[str, int], target: tuple[str, int],
         transfer_mode: str) -> None:
    """Move one shard group (Citus moves the colocated shards with it), in the foreground."""
    with citus_errors(f"Citus did not move shard {shard_id}", hint="nothing was moved; see the coordinator's log"):
        conn.execute("SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, %s::citus.shard_transfer_mode)",
                     (shard_id, *source, *target, transfer_mode))


def isolate(conn: Connection[Any], table: DistributedTable, key: str, transfer_mode: str) -> int:
    """Split the key's hash value into a shard of its own, with its colocated tables (CASCADE)."""
    with citus_errors(f"Citus did not isolate {key} in {table.table}",
                      hint="nothing was changed; see the coordinator's log"):
        row = conn.execute(sql.SQL(
            "SELECT isolate_tenant_to_new_shard(%s::regclass, CAST(%s AS {}), 'CASCADE', "
            "shard_transfer_mode => %s::citus.shard_transfer_mode)").format(sql.SQL(table.column_type)),
            (table.table, key, transfer_mode)).fetchone()
    assert row is not None
    return int(row[0])


def shard_rows(conn: Connection[Any], table: str) -> dict[int, int]:
    """Exact rows per shard of one table (one count per shard, run where the shard lives)."""
    rows = conn.execute("SELECT shardid, success, result FROM run_command_on_shards(%s::regclass, "
                        "'SELECT count(*) FROM %%s')", (table,)).fetchall()
    bad = [f"shard {r[0]}: {r[2]}" for r in rows if not r[1]]
    if bad:
        raise ShardOperationError(f"cannot count the shards of {table}", details=bad[:5])
    return {int(r[0]): int(r[2]) for r in rows}


def citus_tables(conn: Connection[Any]) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT table_name::text FROM citus_tables ORDER BY 1").fetchall()]


def table_sums(conn: Connection[Any]) -> dict[str, TableSum]:
    """Rows and checksum of every Citus table; compared before and after anything moves."""
    out = {}
    for table in citus_tables(conn):
        row = conn.execute(sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {} t").format(
            sql.SQL(table)), ()).fetchone()  # the name comes from the catalog, already quoted as needed
        assert row is not None
        out[table] = TableSum(int(row[0]), str(row[1]))
    return out
