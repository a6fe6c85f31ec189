"""How the Citus tables are spread: shards, rows and bytes per table and per node, skew, key lookup.

Read from Citus's own catalog on the coordinator (see catalog.py) plus one count per shard, so rows are
exact rather than estimated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import Connection

from streamctl.citus import catalog
from streamctl.citus.nodes import coordinator_conn, label, node_names
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError, PreflightError
from streamctl.pgconn import PrivilegeError


@dataclass(frozen=True)
class NodeSpread:
    node: str  # topology name when known, else host:port
    shards: int = 0
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class TableSpread:
    table: str
    kind: str  # distributed | reference | ...
    distribution_column: str | None
    colocation_id: int
    shard_count: int
    rows: int
    bytes: int
    nodes: list[NodeSpread]
    shard_rows: dict[int, int] = field(default_factory=dict)

    @property
    def shard_skew(self) -> float | None:
        """Largest shard / mean shard, by rows; None when there is nothing to compare."""
        return _skew(list(self.shard_rows.values())) if self.kind == "distributed" else None

    @property
    def byte_skew(self) -> float | None:
        """Largest node / mean node, by bytes: what a scrape can afford every few seconds (no counts)."""
        return _skew([n.bytes for n in self.nodes]) if self.kind == "distributed" else None

    @property
    def node_skew(self) -> float | None:
        """Busiest node / mean node, by rows, over every node that should hold shards."""
        return _skew([n.rows for n in self.nodes]) if self.kind == "distributed" else None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "kind": self.kind, "distribution_column": self.distribution_column,
                "colocation_id": self.colocation_id, "shard_count": self.shard_count, "rows": self.rows,
                "bytes": self.bytes, "shard_skew": _round(self.shard_skew),
                "node_skew": _round(self.node_skew), "nodes": [vars(n) for n in self.nodes]}


@dataclass(frozen=True)
class KeyLocation:
    table: str
    key: str
    shard_id: int
    shard_name: str
    nodes: list[str]

    def to_json(self) -> dict[str, Any]:
        return vars(self).copy()


def _skew(values: list[int]) -> float | None:
    if not values or sum(values) == 0:
        return None
    return max(values) / (sum(values) / len(values))


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _shard_rows(conn: Connection[Any], table: str) -> dict[int, int]:
    rows = catalog.shard_row_counts(conn, table)
    bad = [f"shard {r[0]}: {r[2]}" for r in rows if not r[1]]
    if any("permission denied" in b for b in bad):  # the workers ran the count as our role
        raise PrivilegeError(getattr(conn, "node_name", "") or "coordinator",
                             f"permission denied for table {table} (counting its shards on the workers)")
    if bad:
        raise PreflightError(f"cannot count the shards of {table}", details=bad[:5])
    return {int(r[0]): int(r[2]) for r in rows}


def inspect_shards(ctx: ClusterContext, table: str | None = None) -> list[TableSpread]:
    """Every Citus table (or one), with per-node totals; nodes that should hold shards but hold none count."""
    names = node_names(ctx.endpoints(), ctx.topology)
    with coordinator_conn(ctx) as conn:
        placements = catalog.shard_placements(conn, table)
        if table and not placements:
            raise NotFoundError(f"{table} is not a Citus table (no shards)",
                                hint="list them with `streamctl shards`")
        holders = [label(names, *address) for address in catalog.shard_holders(conn)]
        columns = catalog.distribution_columns(conn)
        by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for r in placements:
            by_table[r[0]].append(r)
        out = []
        for name, rows in by_table.items():
            counts = _shard_rows(conn, name)
            out.append(_spread(name, rows, counts, holders, names, columns.get(name)))
    return out


def _spread(name: str, rows: list[tuple[Any, ...]], counts: dict[int, int], holders: list[str],
            names: dict[tuple[str, int], str], column: str | None) -> TableSpread:
    per_node: dict[str, list[int]] = {h: [0, 0, 0] for h in holders} if rows[0][2] == "distributed" else {}
    for _t, shard, _k, _c, host, port, size in rows:
        node = label(names, host, port)
        acc = per_node.setdefault(node, [0, 0, 0])
        acc[0] += 1
        acc[1] += counts.get(int(shard), 0)
        acc[2] += int(size)
    kind = str(rows[0][2])
    # A reference table's rows are copied to every node: its total is one copy, not the sum.
    total_rows = sum(counts.values())
    total_bytes = sum(int(r[6]) for r in rows) // (len(per_node) if kind == "reference" and per_node else 1)
    return TableSpread(name, kind, None if column in (None, "<none>") else column, int(rows[0][3]),
                       len(counts) or len({r[1] for r in rows}), total_rows, total_bytes,
                       [NodeSpread(n, *v) for n, v in per_node.items()], counts)


def inspect_sizes(conn: Connection[Any], names: dict[tuple[str, int], str]) -> list[TableSpread]:
    """Every Citus table's shards and bytes per node, from the catalog alone (no row counts: rows are 0);
    for metrics, collected every few seconds over `conn` (the caller's role and timeouts)."""
    placements = catalog.shard_placements(conn)
    holders = [label(names, *address) for address in catalog.shard_holders(conn)]
    columns = catalog.distribution_columns(conn)
    by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in placements:
        by_table[r[0]].append(r)
    return [_spread(name, rows, {}, holders, names, columns.get(name)) for name, rows in by_table.items()]


def locate_key(ctx: ClusterContext, table: str, key: str) -> KeyLocation:
    """Which shard of `table` holds distribution value `key`, and on which node(s)."""
    names = node_names(ctx.endpoints(), ctx.topology)
    with coordinator_conn(ctx) as conn:
        if catalog.table_type(conn, table) is None:
            raise NotFoundError(f"{table} is not a Citus table", hint="list them with `streamctl shards`")
        try:
            shard = catalog.shard_for_value(conn, table, key)
        except psycopg.Error as exc:
            raise NotFoundError(f"cannot place {key!r} in {table}: {str(exc).strip().splitlines()[0]}",
                                hint=f"give a value of {table}'s distribution column") from None
        nodes = catalog.shard_nodes(conn, shard)
    return KeyLocation(table, key, shard, nodes[0][0] if nodes else f"{table}_{shard}",
                       [label(names, h, p) for _s, h, p in nodes])
