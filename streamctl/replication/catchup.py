"""When a logical replica has caught up with its primary: the one rule, and the waits built on it.

The rule (`lagging`): every table of the subscription is in state `r` (ready) *and* has as many rows on
the replica as on the primary. `up` waits on it after subscribing, `seed` after loading (behind the
primary's WAL position first); `verify` judges each table's state with `table_ready`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from streamctl import names
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.readiness import Readiness
from streamctl.replication import catalog

READY = "r"  # pg_subscription_rel.srsubstate of a table whose initial sync is done


def table_ready(state: str | None) -> bool:
    return state == READY


def lagging(tables: Iterable[str], states: dict[str, str], primary_rows: Callable[[str], int],
            replica_rows: Callable[[str], int]) -> list[str]:
    """THE caught-up rule: the tables not yet in state `r` with equal row counts on both sides (counted
    only once a table is ready, so a long initial copy is not counted over and over)."""
    return [t for t in tables if not table_ready(states.get(t)) or replica_rows(t) != primary_rows(t)]


def wait_synced(ctx: ClusterContext, replica: str, primary: str, tables: tuple[str, ...], timeout: float,
                logs: Callable[[], list[str]], interval: float = 0.05) -> None:
    """After `up` subscribes a replica: wait until the rule holds for every table.

    The two connections live across probes (a verified TLS login costs more than the probe's queries),
    and are opened again after an error."""
    sub = names.subscription_name(replica)
    conns: dict[str, psycopg.Connection[Any]] = {}

    def conn(name: str) -> psycopg.Connection[Any]:
        if name not in conns or conns[name].closed:
            conns[name] = ctx.pg_connect(name)
        return conns[name]

    def probe() -> bool:
        try:
            rconn, pconn = conn(replica), conn(primary)
            states = catalog.table_states(rconn, sub)
            return not lagging(tables, states, lambda t: catalog.row_count(pconn, t),
                               lambda t: catalog.row_count(rconn, t))
        except Exception:
            close()
            raise

    def close() -> None:
        for c in conns.values():
            c.close()
        conns.clear()

    try:
        Readiness(f"initial sync of {replica}", probe, timeout, interval=interval, logs=logs,
                  hint=f"see `streamctl logs {replica}` and `streamctl logs {primary}`").wait()
    finally:
        close()


def wait_for_replicas(ctx: ClusterContext, tables: tuple[str, ...], timeout: float,
                      interval: float = 0.2) -> dict[str, float]:
    """Seconds each replica took to catch up with the primary's current WAL position, then the rule.

    The LSN test comes first: matching counts alone could be the *old* rows of a reset that has not
    been applied yet. Raises ReadinessTimeout (with the remaining lag) after `timeout` seconds.
    """
    replicas = [r.name for r in ctx.topology.analytics.replicas]
    if not replicas or ctx.topology.analytics.primary is None:
        return {}
    primary_name = ctx.topology.analytics.primary.name
    waited: dict[str, float] = {}
    with ctx.pg_connect(primary_name) as primary:
        target = catalog.current_lsn(primary)
        expected = {t: catalog.row_count(primary, t) for t in tables}
        for name in replicas:
            slot = names.subscription_name(name)
            if catalog.slot_active(primary, slot) is None:
                raise BackendError(f"{name}: no replication slot {slot} on {primary_name}",
                                   hint="the replica is not subscribed: run `streamctl up`")
            with ctx.pg_connect(name) as replica:
                waited[name] = _wait_one(name, primary, replica, slot, target, expected, timeout, interval)
    return waited


def _wait_one(name: str, primary: psycopg.Connection[Any], replica: psycopg.Connection[Any], slot: str,
              target: str, expected: dict[str, int], timeout: float, interval: float) -> float:
    state: dict[str, Any] = {"lag": None, "counts": {}}

    def count(table: str) -> int:
        state["counts"][table] = catalog.row_count(replica, table)
        return int(state["counts"][table])

    def caught_up() -> bool:
        state["lag"] = catalog.bytes_behind(primary, slot, target)
        if state["lag"] is None or state["lag"] > 0:
            return False
        state["counts"] = {}
        states = catalog.table_states(replica, names.subscription_name(name))
        return not lagging(expected, states, expected.__getitem__, count)

    def describe() -> list[str]:
        lines = [f"replication lag: {state['lag']} bytes behind {target}" if state["lag"] is not None
                 else f"slot {slot} reports no confirmed position yet"]
        for table, want in expected.items():
            have = state["counts"].get(table, "not checked")
            lines.append(f"{table}: {have} rows on {name}, {want} on the primary")
        return lines

    return Readiness(f"{name} catching up with the primary", caught_up, timeout, interval, logs=describe,
                     hint=f"see `streamctl logs {name}`; raise --replica-timeout for large scales").wait()


def wait_confirmed(ctx: ClusterContext, primary: str, replica: str, timeout: float) -> bool:
    """Give a replica a moment to confirm what the primary had written when this began; whether it did."""
    with ctx.pg_connect(primary, ctx.topology.analytics.database) as conn:
        target = catalog.current_lsn(conn)
        slot = names.subscription_name(replica)
        deadline = time.monotonic() + timeout
        while True:
            if catalog.slot_active(conn, slot) is None:
                return False
            behind = catalog.bytes_behind(conn, slot, target)
            reached = behind is not None and behind <= 0
            if reached or time.monotonic() >= deadline:
                return reached
            time.sleep(0.1)


def streaming(ctx: ClusterContext, primary: str, replica: str) -> bool | None:
    """Whether the replica's subscription is connected to its slot on the primary (None: no slot)."""
    with ctx.pg_connect(primary, ctx.topology.analytics.database) as conn:
        return catalog.slot_active(conn, names.subscription_name(replica))


def wait_caught_up(ctx: ClusterContext, replica: str, primary: str, timeout: float,
                   logs: Callable[[], list[str]], replaced: int | None = None) -> None:
    """After `up` repairs a subscription that had stopped streaming (its peer's task was replaced, pg_hba
    refused it, ...): wait until it streams again and has confirmed the primary's WAL position of now, so
    a `verify` right after `up` sees no lag. `replaced`: the walsender that held the slot before the
    subscription's connection changed; it lingers a moment after its apply worker ended, and only a new
    one counts (else the next `up` could find the slot free while the new worker connects)."""
    slot = names.subscription_name(replica)
    with ctx.pg_connect(primary, ctx.topology.analytics.database) as conn:
        target = catalog.current_lsn(conn)
        state: dict[str, Any] = {"lag": None}

        def caught_up() -> bool:
            state["lag"] = catalog.bytes_behind(conn, slot, target)
            pid = catalog.slot_pid(conn, slot)
            return pid is not None and pid != replaced and state["lag"] is not None and state["lag"] <= 0

        Readiness(f"{replica} catching up with {primary}", caught_up, timeout, interval=0.1,
                  logs=lambda: [f"slot {slot}: {state['lag']} bytes behind {target}", *logs()],
                  hint=f"see `streamctl logs {replica}` and `streamctl logs {primary}`").wait()
