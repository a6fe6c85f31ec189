"""Chunked table checksums: the same primary-key ranges hashed on two nodes, to compare their content.

Boundaries are found once, on the reference node, by a keyset walk over the primary-key index; each
chunk is then hashed on both sides (in parallel) as count(*) and md5 of its rows in key order. Chunks
keep memory bounded and let a difference be named by its key range rather than just "the table differs".
Each chunk's query runs with `SORT_MEM` as its work_mem (SET LOCAL, its own transaction): the ordered
aggregate sorts the chunk's rows, which at the server's default (4MB) spill to a temporary file.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql

Key = tuple[Any, ...]

# Enough for the default chunk (100,000 rows) to be sorted in memory; a larger chunk spills as before.
SORT_MEM = "64MB"


@dataclass(frozen=True)
class Chunk:
    """Rows whose key is in (low, high]; None on either side means unbounded."""

    low: Key | None
    high: Key | None

    def label(self, columns: Sequence[str]) -> str:
        def show(k: Key | None) -> str:
            return "∞" if k is None else ", ".join(str(v) for v in k)
        cols = ", ".join(columns)
        return f"({cols}) in ({show(self.low)} .. {show(self.high)}]"


@dataclass(frozen=True)
class ChunkSum:
    rows: int
    md5: str | None


@dataclass(frozen=True)
class TableComparison:
    table: str
    key: list[str]
    chunks: list[Chunk]
    left: list[ChunkSum]
    right: list[ChunkSum]

    @property
    def left_rows(self) -> int:
        return sum(c.rows for c in self.left)

    @property
    def right_rows(self) -> int:
        return sum(c.rows for c in self.right)

    @property
    def first_difference(self) -> int | None:
        return next((i for i, (a, b) in enumerate(zip(self.left, self.right, strict=True)) if a != b), None)

    @property
    def differing_chunks(self) -> int:
        return sum(1 for a, b in zip(self.left, self.right, strict=True) if a != b)


class NoKeyError(Exception):
    """The table has no primary key: there is no stable order to hash it in."""


def primary_key(conn: Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord", (table,)).fetchall()
    if not rows:
        raise NoKeyError(f"table {table} has no primary key")
    return [r[0] for r in rows]


def columns(conn: Connection[Any], table: str) -> list[str]:
    rows = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()
    return [r[0] for r in rows]


def _key_sql(key: Sequence[str]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, key)))


def _params(key: Key) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(key)))


def boundaries(conn: Connection[Any], table: str, key: Sequence[str], chunk_rows: int) -> list[Chunk]:
    """Walk the key index in steps of chunk_rows; each step reads only the index entries it skips."""
    k = _key_sql(key)
    order = sql.SQL(", ").join(map(sql.Identifier, key))
    cols = sql.SQL(", ").join(map(sql.Identifier, key))
    first = sql.SQL("SELECT {cols} FROM {t} ORDER BY {order} OFFSET %s LIMIT 1").format(
        cols=cols, t=sql.Identifier(table), order=order)
    marks: list[Key] = []
    row = conn.execute(first, (chunk_rows - 1,)).fetchone()
    while row is not None:
        marks.append(tuple(row))
        nxt = sql.SQL("SELECT {cols} FROM {t} WHERE {k} > {p} ORDER BY {order} OFFSET %s LIMIT 1").format(
            cols=cols, t=sql.Identifier(table), k=k, p=_params(marks[-1]), order=order)
        row = conn.execute(nxt, (*marks[-1], chunk_rows - 1)).fetchone()
    edges: list[Key | None] = [None, *marks, None]
    return [Chunk(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def chunk_query(table: str, key: Sequence[str], cols: Sequence[str], chunk: Chunk) -> tuple[
        sql.Composed, list[Any]]:
    """count(*) and md5 of the chunk's rows (listed columns, key order): identical SQL on both sides."""
    k = _key_sql(key)
    where: list[sql.Composable] = []
    params: list[Any] = []
    if chunk.low is not None:
        where.append(sql.SQL("{k} > {p}").format(k=k, p=_params(chunk.low)))
        params.extend(chunk.low)
    if chunk.high is not None:
        where.append(sql.SQL("{k} <= {p}").format(k=k, p=_params(chunk.high)))
        params.extend(chunk.high)
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, cols)))
    template = "SELECT count(*), md5(string_agg({row}, E'\\n' ORDER BY {order})) FROM {t}{where}"
    query = sql.SQL(template).format(
        row=row, order=sql.SQL(", ").join(map(sql.Identifier, key)), t=sql.Identifier(table),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    return query, params


def hash_chunks(conn: Connection[Any], table: str, key: Sequence[str], cols: Sequence[str],
                chunks: Sequence[Chunk]) -> list[ChunkSum]:
    out = []
    for chunk in chunks:
        query, params = chunk_query(table, key, cols, chunk)
        with conn.transaction():  # the setting ends with it: the connection may be used again
            conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(SORT_MEM)))
            row = conn.execute(query, params).fetchone()
        assert row is not None
        out.append(ChunkSum(int(row[0]), row[1]))
    return out


def compare_table(left: Connection[Any], right: Connection[Any], table: str,
                  chunk_rows: int) -> TableComparison:
    """Key, columns and boundaries come from `left` (the primary); both sides are hashed concurrently."""
    key = primary_key(left, table)
    cols = columns(left, table)
    chunks = boundaries(left, table, key, chunk_rows)
    with ThreadPoolExecutor(max_workers=2) as pool:
        lf = pool.submit(hash_chunks, left, table, key, cols, chunks)
        rf = pool.submit(hash_chunks, right, table, key, cols, chunks)
        return TableComparison(table, key, chunks, lf.result(), rf.result())
