"""Logical replication, per replica: subscription enabled and every table ready, lag, and the data itself.

Object names come from streamctl.names (publication on the primary, one subscription and slot per replica).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from streamctl import names
from streamctl.config.model import Node, Role, Topology
from streamctl.context import ClusterContext
from streamctl.parallel import each
from streamctl.replication import catalog
from streamctl.replication.catalog import Subscription
from streamctl.replication.catchup import table_ready, wait_confirmed
from streamctl.verify.checksum import NoKeyError, compare_table
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed, raising

SUBSCRIPTION = "replication.subscription"
LAG = "replication.lag"
DATA = "replication.data"
SLOTS = "replication.slots"
COMPARE_AT_ONCE = 4  # tables compared at once per replica (each: one primary and one replica backend)


def skip_reason(t: Topology) -> str | None:
    if not t.analytics.enabled or t.analytics.primary is None:
        return "analytics.enabled is false"
    if not t.analytics.replicas:
        return "the topology declares no analytics replicas"
    return None


def slots_skip_reason(t: Topology) -> str | None:
    """Slots matter even with no replica declared: those of removed replicas are what it looks for."""
    if not t.analytics.enabled or t.analytics.primary is None:
        return "analytics.enabled is false"
    return None


def _primary(ctx: ClusterContext) -> Node:
    node = ctx.first(Role.ANALYTICS_PRIMARY)
    assert node is not None  # skip_reason rules this out
    return node


def _replicas(ctx: ClusterContext) -> list[Node]:
    return ctx.topology.nodes_by_role(Role.ANALYTICS_REPLICA)


# -- subscription state -----------------------------------------------------------------------------
def check_subscription(ctx: ClusterContext) -> list[CheckResult]:
    """Per replica and table: published, subscription present and enabled, table state `r` (ready)."""
    tables = ctx.topology.analytics.tables
    db = ctx.topology.analytics.database
    results: list[CheckResult] = []
    with ctx.pg_connect(_primary(ctx).name, db) as pconn:
        published = set(catalog.published_tables(pconn) or ())
    for replica in _replicas(ctx):
        sub = names.subscription_name(replica.name)

        def states(rep: Node = replica) -> tuple[Subscription | None, dict[str, str]]:
            with ctx.pg_connect(rep.name, db) as conn:
                name = names.subscription_name(rep.name)
                return catalog.subscription(conn, name), catalog.table_states(conn, name)

        try:
            found, table_states = states()
        except Exception as exc:  # noqa: BLE001 - reported per table as "could not run"
            results.extend(guarded(SUBSCRIPTION, f"{replica.name}/{t}", raising(exc)) for t in tables)
            continue
        for table in tables:
            results.append(guarded(SUBSCRIPTION, f"{replica.name}/{table}",
                                   partial(_table_state, table, found, table_states, sub, published)))
    return results



def _table_state(table: str, found: Subscription | None, states: dict[str, str], sub: str,
                 published: set[str]) -> Verdict:
    if table not in published:
        return failed(f"{table} is not in publication {names.PUBLICATION} on the primary")
    if found is None:
        return failed(f"subscription {sub} does not exist on the replica")
    if not found.enabled:
        return failed(f"subscription {sub} is disabled: {table} is not replicating", enabled=False)
    state = states.get(table)
    if state is None:
        return failed(f"{table} is not part of subscription {sub}", enabled=True)
    if not table_ready(state):
        return failed(f"{table} is in state {state!r}, not 'r' (ready)", enabled=True, state=state)
    return passed(f"subscription {sub} enabled, state r", enabled=True, state=state)


# -- lag --------------------------------------------------------------------------------------------
def check_lag(ctx: ClusterContext) -> list[CheckResult]:
    """Bytes: WAL the slot has not confirmed; seconds: the walsender's replay lag (NULL when caught up)."""
    v = ctx.topology.verify
    db = ctx.topology.analytics.database
    primary = _primary(ctx)

    def one(replica: Node) -> Verdict:
        with ctx.pg_connect(replica.name, db) as rconn:
            found = catalog.subscription(rconn, names.subscription_name(replica.name))
        if found is None:
            return failed(f"no subscription {names.subscription_name(replica.name)} on the replica")
        slot = found.slot
        with ctx.pg_connect(primary.name, db) as pconn:
            lag = catalog.slot_lag(pconn, slot)
        if lag is None:
            return failed(f"replication slot {slot} does not exist on the primary")
        lag_bytes, active, lag_seconds = lag
        data = {"lag_bytes": lag_bytes, "lag_seconds": lag_seconds, "slot_active": active}
        if not active:
            return failed(f"slot {slot} has no connected subscriber ({lag_bytes} bytes behind)", **data)
        if lag_bytes > v.max_lag_bytes or lag_seconds > v.max_lag_seconds:
            return failed(f"{lag_bytes} bytes / {lag_seconds:.1f}s behind (limits {v.max_lag_bytes} bytes, "
                          f"{v.max_lag_seconds:g}s)", **data)
        return passed(f"{lag_bytes} bytes / {lag_seconds:.1f}s behind", **data)

    return [guarded(LAG, r.name, partial(one, r)) for r in _replicas(ctx)]


# -- slots ------------------------------------------------------------------------------------------
def check_slots(ctx: ClusterContext) -> list[CheckResult]:
    """The primary's WAL bound (max_slot_wal_keep_size), then every `streamctl_sub_*` slot: owned by a replica
    of the topology, subscriber connected, not behind; each with the WAL it holds on the primary."""
    t = ctx.topology
    primary = _primary(ctx)
    owned = {names.subscription_name(r.name) for r in _replicas(ctx)}
    try:
        with ctx.pg_connect(primary.name, t.analytics.database) as conn:
            limit = catalog.wal_keep_limit(conn)
            slots = catalog.streamctl_slots(conn)
    except Exception as exc:  # noqa: BLE001 - reported as "could not run"
        return [guarded(SLOTS, primary.name, raising(exc))]
    wanted = t.analytics.max_slot_wal_keep_size
    results = [guarded(SLOTS, primary.name, partial(_wal_limit, limit, wanted, primary.is_external))]
    results += [guarded(SLOTS, s.name, partial(_slot, s, s.name in owned, t.verify.max_lag_bytes, limit))
                for s in slots]
    return results


def _wal_limit(limit: str, wanted: str, external: bool) -> Verdict:
    """Unbounded on a primary streamctl runs is a defect (`up` sets it); on an external primary it is its
    administrator's choice, passed with the advice."""
    if limit == "-1" and wanted != "-1":
        advice = ("max_slot_wal_keep_size is -1: a slot whose replica is gone keeps WAL until the disk is full")
        if external:
            return passed(f"{advice} (the server's own setting: set it there to bound it)",
                          max_slot_wal_keep_size=limit)
        return failed(f"{advice}; `streamctl up` sets analytics.max_slot_wal_keep_size ({wanted})",
                      max_slot_wal_keep_size=limit)
    bound = "unbounded (analytics.max_slot_wal_keep_size: -1)" if limit == "-1" else limit
    return passed(f"max_slot_wal_keep_size {bound}", max_slot_wal_keep_size=limit)


def _slot(slot: catalog.SlotInfo, owned: bool, max_lag: int, limit: str) -> Verdict:
    data = {"slot": slot.name, "owned": owned, "active": slot.active, "retained_bytes": slot.retained_bytes,
            "lag_bytes": slot.lag_bytes, "wal_status": slot.wal_status, "max_slot_wal_keep_size": limit}
    holds = f"holds {slot.retained_bytes} bytes of WAL"
    if slot.wal_status == "lost":
        return failed(f"invalidated: it needed more WAL than max_slot_wal_keep_size ({limit}) keeps; its replica "
                      "must be rebuilt (remove it from the topology, `up`, then add it back)", **data)
    if not owned:
        fix = ("`streamctl up --remove-orphans` removes the replica streaming from it" if slot.active
               else "`streamctl up` drops it")
        return failed(f"stray: no replica in the topology owns it ({'active' if slot.active else 'inactive'}); "
                      f"{holds}; {fix}", **data)
    if not slot.active:
        return failed(f"no subscriber connected; {holds}", **data)
    if slot.lag_bytes > max_lag:
        return failed(f"lagging: {slot.lag_bytes} bytes not confirmed (limit {max_lag}); {holds}", **data)
    return passed(holds, **data)


# -- data -------------------------------------------------------------------------------------------
def check_data(ctx: ClusterContext) -> list[CheckResult]:
    """Per replica and table: row counts and chunked content checksums equal to the primary's. A replica's
    tables are compared at once (each over its own pair of connections), results in the tables' order."""
    t = ctx.topology
    db = t.analytics.database
    results: list[CheckResult] = []
    for replica in _replicas(ctx):
        try:
            # Let a quiet platform compare equal; a replica that stays behind is compared anyway.
            caught_up = wait_confirmed(ctx, _primary(ctx).name, replica.name, min(5.0, t.verify.max_lag_seconds))
        except Exception:  # noqa: BLE001 - the comparison below reports what is wrong with the nodes
            caught_up = False

        def one(table: str, replica: Node = replica, caught_up: bool = caught_up) -> CheckResult:
            return guarded(DATA, f"{replica.name}/{table}", partial(_compare, ctx, replica, table, db, caught_up))

        # guarded: a failure is a result, never raised
        results.extend(o.get() for o in each(list(t.analytics.tables), one, limit=COMPARE_AT_ONCE))
    return results


def _compare(ctx: ClusterContext, replica: Node, table: str, db: str, caught_up: bool) -> Verdict:
    chunk_rows = ctx.topology.verify.checksum_chunk_rows
    with ctx.pg_connect(_primary(ctx).name, db) as left, ctx.pg_connect(replica.name, db) as right:
        try:
            cmp = compare_table(left, right, table, chunk_rows)
        except NoKeyError as exc:
            return failed(f"{exc}: add one (or a replica identity) so its content can be compared")
    data: dict[str, Any] = {"primary_rows": cmp.left_rows, "replica_rows": cmp.right_rows,
                            "chunks": len(cmp.chunks), "differing_chunks": cmp.differing_chunks,
                            "key": cmp.key}
    note = "" if caught_up else " (the replica had not caught up with the primary; see replication.lag)"
    first = cmp.first_difference
    if first is None:
        return passed(f"{cmp.left_rows} rows, {len(cmp.chunks)} chunks identical", **data)
    chunk, a, b = cmp.chunks[first], cmp.left[first], cmp.right[first]
    data["first_differing_range"] = {"low": _plain(chunk.low), "high": _plain(chunk.high),
                                     "primary_rows": a.rows, "replica_rows": b.rows}
    counts = (f"row counts differ: primary {cmp.left_rows}, replica {cmp.right_rows}"
              if cmp.left_rows != cmp.right_rows else f"same row count ({cmp.left_rows}) but content differs")
    return failed(f"{table}: {counts}; first differing range {chunk.label(cmp.key)} (primary {a.rows} "
                  f"rows, replica {b.rows}); {cmp.differing_chunks} of {len(cmp.chunks)} chunks differ{note}",
                  **data)


def _plain(key: tuple[Any, ...] | None) -> list[str] | None:
    return None if key is None else [str(v) for v in key]
