"""Citus checks on the coordinator: workers active, placements on active nodes, tables distributed as
declared (column, colocation, shard count), and shard skew within topology.verify.max_skew."""

from __future__ import annotations

from functools import partial
from typing import Any

from streamctl import names
from streamctl.citus import catalog, placement
from streamctl.citus import tenants as citus_tenants
from streamctl.citus.nodes import coordinator_conn, label, member_names, node_names
from streamctl.citus.shards import TableSpread, inspect_shards
from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed, raising, skipped

WORKERS = "citus.workers"
PLACEMENTS = "citus.placements"
DISTRIBUTION = "citus.distribution"
SKEW = "citus.skew"

MIN_ROWS_PER_SHARD = 100  # below this, hashing noise alone can exceed any sensible skew threshold
# Rows hash by distribution value: with few distinct values per shard, shards differ by chance (500 titles
# over 32 shards: the largest shard is ~1.5x the mean on a healthy cluster). Then only the node level,
# which averages many shards, is judged; a hot value still shows there.
MIN_KEYS_PER_SHARD = 100


def skip_reason(t: Topology) -> str | None:
    return None if t.citus else "metadata.citus.enabled is false"


def check_workers(ctx: ClusterContext) -> list[CheckResult]:
    """Every worker of the topology is registered, active and a primary; no stray active node."""
    workers = ctx.topology.nodes_by_role(Role.WORKER)
    labels = node_names(ctx.endpoints(), ctx.topology)
    try:
        with coordinator_conn(ctx) as conn:
            rows = catalog.worker_rows(conn)
    except Exception as exc:  # noqa: BLE001 - every worker's result says the check could not run
        return [guarded(WORKERS, w.name, raising(exc)) for w in workers] or [
            guarded(WORKERS, "coordinator", raising(exc))]
    # Under HA a group's primary is whichever member leads, and its other members are registered as secondaries.
    members = member_names(ctx.topology)
    registered = {label(labels, r[0], r[1]): r for r in rows if not (r[3] == "secondary" and (r[0], r[1]) in members)}

    def one(name: str) -> Verdict:
        r = registered.get(name)
        if r is None:
            return failed(f"{name} is not registered with the coordinator ({catalog.NODES_TABLE})")
        if not r[2]:
            return failed(f"{name} ({r[0]}:{r[1]}) is registered but not active")
        if r[3] != "primary":
            return failed(f"{name} is registered as {r[3]}, not primary")
        return passed(f"active at {r[0]}:{r[1]}" + ("" if r[4] else " (draining: should not hold shards)"))

    results = [guarded(WORKERS, w.name, partial(one, w.name)) for w in workers]
    declared = {w.name for w in workers}
    for extra in sorted(set(registered) - declared):
        results.append(guarded(WORKERS, extra, partial(
            failed, f"{extra} is registered with the coordinator but not declared in the topology")))
    return results


def check_placements(ctx: ClusterContext) -> list[CheckResult]:
    def body() -> Verdict:
        with coordinator_conn(ctx) as conn:
            bad = catalog.placements_off_active_nodes(conn)
            n = catalog.placement_count(conn)
        if bad:
            first = bad[0]
            where = f"{first[3]}:{first[4]} (inactive)" if first[3] else f"group {first[2]} (no node)"
            tables = sorted({r[1] for r in bad})
            return failed(f"{len(bad)} of {n} placements are not on an active node; first: shard {first[0]} "
                          f"of {first[1]} on {where}", tables=tables, bad=len(bad), placements=n)
        return passed(f"all {n} placements on active nodes", placements=n)

    return [guarded(PLACEMENTS, "coordinator", body)]


def check_distribution(ctx: ClusterContext) -> list[CheckResult]:
    """Tables from streamctl.names: distributed by content_id with the topology's shard count, all in one
    colocation group; reference tables replicated."""
    shard_count = ctx.topology.metadata.citus.shard_count
    try:
        with coordinator_conn(ctx) as conn:
            rows = catalog.table_layouts(conn)
            isolated = placement.isolated_shards(conn)
    except Exception as exc:  # noqa: BLE001
        tables = [*names.DISTRIBUTED_TABLES, *names.REFERENCE_TABLES]
        return [guarded(DISTRIBUTION, t, raising(exc)) for t in tables]
    colocations = {rows[t][3] for t in names.DISTRIBUTED_TABLES if t in rows}

    def distributed(table: str) -> Verdict:
        r = rows.get(table)
        if r is None:
            return failed(f"{table} is not a Citus table (expected distributed by "
                          f"{names.DISTRIBUTION_COLUMN})")
        data: dict[str, Any] = {"type": r[1], "column": r[2], "colocation_id": r[3], "shard_count": r[4]}
        if r[1] != "distributed":
            return failed(f"{table} is a {r[1]} table, expected distributed", **data)
        if r[2] != names.DISTRIBUTION_COLUMN:
            return failed(f"{table} is distributed by {r[2]}, expected {names.DISTRIBUTION_COLUMN}", **data)
        # Isolating a title (`shards isolate`) splits one shard into up to three: allowed, and said.
        tenants = isolated.get(table, 0)
        data["isolated_titles"] = tenants
        if not shard_count <= int(r[4]) <= shard_count + 2 * tenants:
            return failed(f"{table} has {r[4]} shards, the topology says {shard_count}"
                          + (f" (+ up to {2 * tenants} from {tenants} isolated titles)" if tenants else ""), **data)
        if len(colocations) > 1:
            return failed(f"{table} is in colocation group {r[3]}; the distributed tables span "
                          f"{sorted(colocations)}", **data)
        extra = f" ({tenants} isolated titles)" if tenants else ""
        return passed(f"distributed by {r[2]}, {r[4]} shards{extra}, colocation {r[3]}", **data)

    def reference(table: str) -> Verdict:
        r = rows.get(table)
        if r is None or r[1] != "reference":
            return failed(f"{table} is {'not a Citus table' if r is None else f'a {r[1]} table'}, "
                          "expected a reference table")
        return passed("reference table (replicated to every node)", type=r[1])

    return ([guarded(DISTRIBUTION, t, partial(distributed, t)) for t in names.DISTRIBUTED_TABLES]
            + [guarded(DISTRIBUTION, t, partial(reference, t)) for t in names.REFERENCE_TABLES])


def distinct_keys(ctx: ClusterContext, table: str) -> int:
    """Distinct distribution values of a table (Citus pushes the count down to every shard)."""
    with coordinator_conn(ctx) as conn:
        return catalog.distinct_keys(conn, table, names.DISTRIBUTION_COLUMN)


def hot_title(ctx: ClusterContext, s: TableSpread, limit: float, by_node: bool) -> tuple[str | None, str]:
    """The title with the most rows, when it alone causes the skew (without its rows the table would be
    within the limit): its content_id and a sentence naming it; else (None, "")."""
    with coordinator_conn(ctx) as conn:
        top = citus_tenants.rows_per_key(conn, [s.table], names.DISTRIBUTION_COLUMN, 1)
        if not top:
            return None, ""
        key, rows, _per = top[0]
        shard = placement.shard_of(conn, s.table, key)
        where = label(node_names(ctx.store.endpoints(), ctx.topology), *placement.shard_group(conn, shard)[0].node)
        title = citus_tenants.titles(conn, [key]).get(key)
    if by_node:
        values = [n.rows - (rows if n.node == where else 0) for n in s.nodes]
    else:
        values = [n - (rows if sid == shard else 0) for sid, n in s.shard_rows.items()]
    mean = sum(values) / len(values) if values and sum(values) else 0
    if mean and max(values) / mean > limit:
        return None, ""
    name = f"{key} ({title!r})" if title else key
    return key, (f"; one title causes it: {name} holds {rows} of {s.rows} rows, in shard {shard} on {where} "
                 f"(give it a shard of its own: streamctl shards isolate --table {s.table} --key {key})")


def check_skew(ctx: ClusterContext) -> list[CheckResult]:
    limit = ctx.topology.verify.max_skew
    try:
        spreads = [s for s in inspect_shards(ctx) if s.kind == "distributed"]
    except Exception as exc:  # noqa: BLE001
        return [guarded(SKEW, "coordinator", raising(exc))]

    def one(s: TableSpread) -> Verdict:
        keys = distinct_keys(ctx, s.table)
        data = {"rows": s.rows, "shards": s.shard_count, "keys": keys, "shard_skew": s.shard_skew,
                "node_skew": s.node_skew, "max_skew": limit}
        if s.rows < MIN_ROWS_PER_SHARD * max(1, s.shard_count):
            return skipped(f"{s.rows} rows over {s.shard_count} shards: too few to judge skew (needs "
                           f"{MIN_ROWS_PER_SHARD} per shard)", **data)
        biggest = max(s.shard_rows, key=lambda k: s.shard_rows[k]) if s.shard_rows else None
        largest = (f"largest shard ({biggest}, {s.shard_rows[biggest]} rows) is {s.shard_skew:.2f}x the mean"
                   if biggest is not None and s.shard_skew is not None else "")
        if keys >= MIN_KEYS_PER_SHARD * max(1, s.shard_count):
            if s.shard_skew is not None and s.shard_skew > limit:
                hot, why = hot_title(ctx, s, limit, by_node=False)
                return failed(f"{largest}; limit {limit:g}{why}", **data, hot_title=hot)
            return passed(f"shard skew {s.shard_skew:.2f} (limit {limit:g}), node skew "
                          f"{(s.node_skew or 0):.2f}", **data)
        if s.node_skew is not None and s.node_skew > limit:
            hot, why = hot_title(ctx, s, limit, by_node=True)
            return failed(f"busiest node holds {s.node_skew:.2f}x the mean with only {keys} distinct "
                          f"{names.DISTRIBUTION_COLUMN} values ({largest}); limit {limit:g}{why}", **data,
                          hot_title=hot)
        return passed(f"node skew {(s.node_skew or 0):.2f} (limit {limit:g}); shards not judged one by one: "
                      f"{keys} distinct values over {s.shard_count} shards are too few", **data)

    return [guarded(SKEW, s.table, partial(one, s)) for s in spreads]

