"""Hot titles (`shards hot`) and giving one its own shard (`shards isolate`), then showing where it went."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streamctl import names
from streamctl.citus import placement
from streamctl.citus import tenants as citus_tenants
from streamctl.citus.nodes import coordinator_conn
from streamctl.citus.placement import citus_errors
from streamctl.context import ClusterContext
from streamctl.errors import Interrupted, NotFoundError
from streamctl.events import Emit, Event, ignore
from streamctl.shardops.common import (
    Checked,
    MoveOptions,
    Nodes,
    deferred_interrupt,
    integrity_after,
    integrity_before,
)


@dataclass(frozen=True)
class HotTitle:
    content_id: str
    title: str | None
    rows: int
    rows_by_table: dict[str, int]
    queries: int | None  # Citus tenant statistics; None where not collected
    shard_id: int
    node: str
    share: float  # of all rows in the colocated tables


@dataclass
class HotTitles:
    source: str  # "citus_stat_tenants" or "rows"
    total_rows: int
    titles: list[HotTitle] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "total_rows": self.total_rows, "titles": [vars(t) for t in self.titles]}


def hot_titles(ctx: ClusterContext, limit: int = 10) -> HotTitles:
    """The most queried titles (citus_stat_tenants) when Citus collected any, else those with most rows."""
    nodes = Nodes(ctx)
    anchor = names.DISTRIBUTED_TABLES[0]
    with coordinator_conn(ctx) as conn, citus_errors("reading the hot titles failed"):
        table = placement.distributed_table(conn, anchor)
        tables = [t for t in names.DISTRIBUTED_TABLES if t in placement.citus_tables(conn)]
        queries = citus_tenants.tenant_queries(conn, table.colocation_id, limit)
        if queries:
            ranked = citus_tenants.rows_per_key(conn, tables, table.column, limit, list(queries))
            by_key = {k: (n, per) for k, n, per in ranked}
            rows = [(k, *by_key.get(k, (0, {}))) for k in queries]
        else:
            rows = citus_tenants.rows_per_key(conn, tables, table.column, limit)
        totals = placement.table_sums(conn)
        total = sum(totals[t].rows for t in tables if t in totals)
        labels = citus_tenants.titles(conn, [r[0] for r in rows])
        out = HotTitles("citus_stat_tenants" if queries else "rows", total)
        for key, n, per in rows:
            shard = placement.shard_of(conn, anchor, key)
            where = placement.shard_group(conn, shard)[0].node
            out.titles.append(HotTitle(key, labels.get(key), n, per, queries[key][0] if key in queries else None,
                                       shard, nodes.name(where), round(n / total, 4) if total else 0.0))
    return out


@dataclass
class IsolateResult(Checked):
    table: str
    key: str
    shard_id: int
    node: str
    isolated: bool  # False: the key already had a shard of its own
    shards: dict[str, dict[str, int]]  # colocated table -> {"shard": id, "rows": n, "key_rows": n}


def isolate_title(ctx: ClusterContext, table_name: str, key: str, options: MoveOptions,
                  emit: Emit | None = None) -> IsolateResult:
    """Give `key` a shard of its own in `table_name` and every colocated table, then show where it is."""
    say: Emit = emit or ignore
    started = time.monotonic()
    nodes = Nodes(ctx)
    with coordinator_conn(ctx) as conn, citus_errors(f"isolating {key} failed"):
        table = placement.distributed_table(conn, table_name)
        placement.check_key(conn, table, key)
        if placement.key_rows(conn, table.table, table.column, key) == 0:
            raise NotFoundError(f"no row of {table.table} has {table.column} = {key}",
                                hint="find hot titles with `streamctl shards hot`")
        shard = placement.shard_of(conn, table.table, key)
        group = placement.shard_group(conn, shard)
        already = group[0].min_value is not None and group[0].min_value == group[0].max_value
        rows: dict[str, int] = {}
        if already:
            say(Event("noop", "coordinator", "isolate", f"{key} already has shard {shard} of its own"))
        else:
            before = integrity_before(conn)
            say(Event("begin", "coordinator", "isolate", f"{table.column} {key}: splitting shard {shard} "
                      f"({len(group)} colocated shards), transfer mode {options.transfer_mode}"))
            try:
                with deferred_interrupt():  # a split is one Citus operation: let it finish or fail whole
                    shard = placement.isolate(conn, table, key, options.transfer_mode)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted after isolating {key} in shard {shard}",
                                  hint=f"see it with `streamctl shards --table {table.table} --key {key}`") from None
            rows = integrity_after(conn, before)
        group = placement.shard_group(conn, shard)
        shards = {}
        for p in group:
            counts = placement.shard_rows(conn, p.table)
            shards[p.table] = {"shard": p.shard_id, "rows": counts.get(p.shard_id, 0),
                               "key_rows": placement.key_rows(conn, p.table, table.column, key)}
    result = IsolateResult(table.table, key, shard, nodes.name(group[0].node), not already, shards, rows=rows,
                           seconds=time.monotonic() - started)
    say(Event("done", "coordinator", "isolate", f"{key} is alone in shard {shard} on {result.node}",
              result.seconds))
    return result
