"""Moving shards: Citus's background rebalance (or drain), its progress reported as events, and waiting for it."""

from __future__ import annotations

import time
from typing import Any

from psycopg import Connection

from streamctl.citus import catalog
from streamctl.citus.catalog import Address
from streamctl.errors import BackendError, RefusedError
from streamctl.events import Emit, Event

FINAL_JOB_STATES = ("finished", "failed", "cancelled")


def rebalance(conn: Connection[Any], emit: Emit, drain_only: bool = False, poll: float = 0.5) -> int:
    """Start Citus's background rebalance, report its progress, and wait for it; returns the moves made."""
    job = catalog.start_rebalance(conn, drain_only)
    step = "drain" if drain_only else "rebalance"
    if job is None:
        emit(Event("noop", "coordinator", step, "no shard moves needed"))
        return 0
    emit(Event("begin", "coordinator", step, f"background job {job}"))
    t0, last = time.monotonic(), ""
    details: dict[str, Any] = {}
    while True:
        state, details = catalog.job_status(conn, job)
        counts: dict[str, int] = details.get("task_state_counts") or {}
        total, done = sum(counts.values()), counts.get("done", 0)
        running = f", {counts['running']} running" if counts.get("running") else ""
        progress = f"{done}/{total} shard moves done{running}"
        if progress != last:
            emit(Event("info", "coordinator", step, progress, time.monotonic() - t0))
            last = progress
        if state in FINAL_JOB_STATES:
            break
        time.sleep(poll)
    if state != "finished":
        messages = [str(t.get("message")) for t in details.get("tasks", []) if t.get("message")]
        raise BackendError(f"the {step} job {job} ended {state}", details=messages[:5],
                           hint="see citus_rebalance_status() on the coordinator, fix, and run scale again")
    emit(Event("done", "coordinator", step, f"{total} shard moves", time.monotonic() - t0))
    return total


def drain(conn: Connection[Any], leaving: dict[Address, str], emit: Emit) -> int:
    """Move every distributed shard off the leaving nodes (address -> name) and check none is left;
    returns the moves made. Raises RefusedError, with nothing removed, when a node still holds shards."""
    for address in leaving:
        catalog.stop_placing_shards(conn, address)
    moves = rebalance(conn, emit, drain_only=True)
    for address, name in leaving.items():
        left = catalog.distributed_placements_on(conn, address)
        if left:
            raise RefusedError(f"{name} still holds {left} shard placements after draining",
                               hint="see citus_rebalance_status(); nothing was removed")
    return moves


def unregister(conn: Connection[Any], leaving: dict[Address, str], emit: Emit) -> None:
    """Remove drained nodes from the coordinator (their reference-table copies go with them)."""
    for (host, port), name in leaving.items():
        catalog.remove_node(conn, (host, port))
        emit(Event("done", name, "unregister", f"removed from the coordinator ({host}:{port})"))
