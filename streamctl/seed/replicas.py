"""Wait until every analytics replica has applied everything the primary wrote (LSN, then row counts)."""

from __future__ import annotations

from typing import Any

import psycopg

from streamctl import names
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.readiness import Readiness

_SLOT = ("SELECT confirmed_flush_lsn, %s::pg_lsn - confirmed_flush_lsn FROM pg_replication_slots "
         "WHERE slot_name = %s")


def wait_for_replicas(ctx: ClusterContext, tables: tuple[str, ...], timeout: float,
                      interval: float = 0.2) -> dict[str, float]:
    """Seconds each replica took to catch up with the primary's current WAL position and row counts.

    The LSN test comes first: matching counts alone could be the *old* rows of a reset that has not
    been applied yet. Raises ReadinessTimeout (with the remaining lag) after `timeout` seconds.
    """
    replicas = [r.name for r in ctx.topology.analytics.replicas]
    if not replicas or ctx.topology.analytics.primary is None:
        return {}
    primary_name = ctx.topology.analytics.primary.name
    waited: dict[str, float] = {}
    with ctx.pg_connect(primary_name) as primary:
        target = str(_one(primary, "SELECT pg_current_wal_lsn()"))
        expected = {t: _one(primary, f'SELECT count(*) FROM "{t}"') for t in tables}
        for name in replicas:
            slot = names.subscription_name(name)
            if primary.execute(_SLOT, (target, slot)).fetchone() is None:
                raise BackendError(f"{name}: no replication slot {slot} on {primary_name}",
                                   hint="the replica is not subscribed: run `streamctl up`")
            with ctx.pg_connect(name) as replica:
                waited[name] = _wait_one(name, primary, replica, slot, target, expected, timeout, interval)
    return waited


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def _wait_one(name: str, primary: psycopg.Connection[Any], replica: psycopg.Connection[Any], slot: str,
              target: str, expected: dict[str, int], timeout: float, interval: float) -> float:
    state: dict[str, Any] = {"lag": None, "counts": {}}

    def caught_up() -> bool:
        row = primary.execute(_SLOT, (target, slot)).fetchone()
        state["lag"] = None if row is None or row[1] is None else int(row[1])
        if state["lag"] is None or state["lag"] > 0:
            return False
        state["counts"] = {t: _one(replica, f'SELECT count(*) FROM "{t}"') for t in expected}
        return bool(state["counts"] == expected)

    def describe() -> list[str]:
        lines = [f"replication lag: {state['lag']} bytes behind {target}" if state["lag"] is not None
                 else f"slot {slot} reports no confirmed position yet"]
        for table, want in expected.items():
            have = state["counts"].get(table, "not checked")
            lines.append(f"{table}: {have} rows on {name}, {want} on the primary")
        return lines

    return Readiness(f"{name} catching up with the primary", caught_up, timeout, interval, logs=describe,
                     hint=f"see `streamctl logs {name}`; raise --replica-timeout for large scales").wait()
