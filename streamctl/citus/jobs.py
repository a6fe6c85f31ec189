"""Citus's background rebalance job: started (or the one running attached to), its progress reported as
events, waited for (a move that keeps failing stops the wait and says why), cancelled; and the
task-executor settings that let moves between different node pairs run at the same time. What it moves
is Citus's plan (rebalance.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from streamctl.citus import catalog
from streamctl.citus.placement import citus_errors
from streamctl.errors import BackendError, Interrupted
from streamctl.events import Emit, Event

ACTIVE_JOB_STATES = ("scheduled", "running", "cancelling", "failing")
FINAL_JOB_STATES = ("finished", "failed", "cancelled")

TASKS_SQL = """
SELECT t.status::text, substring(t.command FROM 'citus_move_shard_placement\\((\\d+)')::bigint, t.message,
       coalesce(t.retry_count, 0)
FROM pg_dist_background_task t WHERE t.job_id = %s ORDER BY t.task_id
"""
# Citus retries a failed task up to 32 times, 60 s apart after the second retry: a move that keeps failing
# would keep a wait going for half an hour. After this many failures of one task, stop waiting and say why.
MAX_TASK_FAILURES = 3

GROUP_BYTES_SQL = """
SELECT x.anchor, coalesce(sum(s.shard_size), 0)::bigint
FROM unnest(%s::bigint[]) AS x(anchor)
CROSS JOIN LATERAL unnest(get_colocated_shard_array(x.anchor)) AS g(shardid)
JOIN citus_shards s ON s.shardid = g.shardid
GROUP BY x.anchor
"""

# The gateway's dashboard runs this one itself, on its async pool: the latest rebalance job and its moves.
LATEST_JOB_SQL = """
SELECT j.job_id, j.state::text, j.started_at, j.finished_at,
       count(t.task_id) FILTER (WHERE t.command LIKE '%%citus_move_shard_placement%%'),
       count(t.task_id) FILTER (WHERE t.command LIKE '%%citus_move_shard_placement%%' AND t.status = 'done'),
       count(t.task_id) FILTER (WHERE t.status = 'running')
FROM pg_dist_background_job j LEFT JOIN pg_dist_background_task t ON t.job_id = j.job_id
WHERE j.job_id = (SELECT max(job_id) FROM pg_dist_background_job WHERE job_type = 'rebalance')
GROUP BY j.job_id, j.state, j.started_at, j.finished_at
"""

EXECUTOR_SETTINGS = ("citus.max_background_task_executors", "citus.max_background_task_executors_per_node")


@dataclass
class JobProgress:
    """A background rebalance job: state, moves done / total, bytes of the shard groups moved so far."""

    job_id: int
    state: str
    moves_total: int = 0
    moves_done: int = 0
    running: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    errors: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)  # moves that failed and wait for Citus's retry
    failures: int = 0  # the most failures of any one task so far

    @property
    def final(self) -> bool:
        return self.state in FINAL_JOB_STATES

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


def start(conn: Connection[Any], drain_only: bool = False, transfer_mode: str = "auto",
          parallel: bool = False) -> int | None:
    """Schedule the background rebalance; None when Citus finds nothing to move."""
    row = conn.execute(
        "SELECT citus_rebalance_start(drain_only => %s, shard_transfer_mode => %s::citus.shard_transfer_mode, "
        "parallel_transfer_colocated_shards => %s, parallel_transfer_reference_tables => %s)",
        (drain_only, transfer_mode, parallel, parallel)).fetchone()
    return int(row[0]) if row and row[0] else None


def active_job(conn: Connection[Any]) -> int | None:
    """The rebalance job still scheduled or running, if any (Citus runs one at a time)."""
    row = conn.execute("SELECT job_id FROM pg_dist_background_job WHERE job_type = 'rebalance' "
                       "AND state::text = ANY(%s) ORDER BY job_id DESC LIMIT 1", (list(ACTIVE_JOB_STATES),)
                       ).fetchone()
    return int(row[0]) if row else None


def latest_job(conn: Connection[Any]) -> int | None:
    row = conn.execute("SELECT max(job_id) FROM pg_dist_background_job WHERE job_type = 'rebalance'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def group_bytes(conn: Connection[Any], shard_ids: list[int]) -> dict[int, int]:
    """Bytes of each shard's whole colocation group (what one move copies)."""
    if not shard_ids:
        return {}
    return {int(r[0]): int(r[1]) for r in conn.execute(GROUP_BYTES_SQL, (shard_ids,)).fetchall()}


def job_sizes(conn: Connection[Any], job_id: int) -> dict[int, int]:
    """Bytes each of the job's moves carries (computed once: sizes do not change while shards move)."""
    tasks = conn.execute(TASKS_SQL, (job_id,)).fetchall()
    return group_bytes(conn, [int(t[1]) for t in tasks if t[1] is not None])


def progress(conn: Connection[Any], job_id: int, sizes: dict[int, int] | None = None) -> JobProgress:
    """Moves done / total and bytes from the job's tasks; `sizes` (from group_bytes) is reused between polls."""
    row = conn.execute("SELECT state::text FROM pg_dist_background_job WHERE job_id = %s", (job_id,)).fetchone()
    state = str(row[0]) if row else "missing"
    tasks = conn.execute(TASKS_SQL, (job_id,)).fetchall()
    moves = [(str(s), int(shard), msg) for s, shard, msg, _retries in tasks if shard is not None]
    if sizes is None:
        sizes = group_bytes(conn, [m[1] for m in moves])
    out = JobProgress(job_id, state, moves_total=len(moves))
    for status, shard, _msg in moves:
        out.bytes_total += sizes.get(shard, 0)
        if status == "done":
            out.moves_done += 1
            out.bytes_done += sizes.get(shard, 0)
        elif status == "running":
            out.running += 1
    out.errors = [str(msg) for status, _s, msg, _r in tasks if msg and status in ("error", "cancelled")][:5]
    out.retrying = [f"shard {shard}: {str(msg).strip()}" for status, shard, msg, retries in tasks
                    if status == "runnable" and retries and msg][:5]
    out.failures = max((int(r) for *_rest, r in tasks), default=0)
    return out


def cancel(conn: Connection[Any], job_id: int) -> None:
    conn.execute("SELECT citus_job_cancel(%s)", (job_id,))


QUEUE_INTERVAL = "citus.background_task_queue_interval"  # ms between checks for runnable tasks (5 s)


@contextmanager
def job_settings(conn: Connection[Any], per_node: int, total: int, queue_interval_ms: int = 200
                 ) -> Iterator[None]:
    """For the duration of a job: look for runnable tasks every `queue_interval_ms` (Citus waits up to 5 s
    before the first move otherwise) and, when per_node > 1, raise the background task executors (cluster-
    wide and per node); afterwards put back exactly what was there (ALTER SYSTEM value or the files')."""
    names = [QUEUE_INTERVAL, *EXECUTOR_SETTINGS]
    before = {str(r[0]): (int(r[1]), str(r[2] or "")) for r in conn.execute(
        "SELECT name, setting, sourcefile FROM pg_settings WHERE name = ANY(%s)", (names,))}
    change: dict[str, int] = {}
    if QUEUE_INTERVAL in before and before[QUEUE_INTERVAL][0] > queue_interval_ms:
        change[QUEUE_INTERVAL] = queue_interval_ms
    if per_node > 1:
        change.update({k: v for k, v in zip(EXECUTOR_SETTINGS, (total, per_node), strict=True)
                       if k in before and before[k][0] < v})
    for name, value in change.items():
        conn.execute(f"ALTER SYSTEM SET {name} = {int(value)}")  # names are constants, values ints
    if change:
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        for name in change:
            setting, source = before[name]
            if source.endswith("postgresql.auto.conf"):
                conn.execute(f"ALTER SYSTEM SET {name} = {int(setting)}")
            else:
                conn.execute(f"ALTER SYSTEM RESET {name}")
        if change:
            conn.execute("SELECT pg_reload_conf()")


FOLLOW = "follow it: `streamctl shards rebalance status`; cancel it: `streamctl shards rebalance cancel`"


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def _progress_line(p: JobProgress) -> str:
    running = f", {p.running} running" if p.running else ""
    return f"{p.moves_done}/{p.moves_total} shard moves done{running}, {_mb(p.bytes_done)} of {_mb(p.bytes_total)}"


def wait_job(conn: Connection[Any], job_id: int, emit: Emit, step: str, poll: float = 0.25) -> JobProgress:
    """Report the job's progress until it ends; Ctrl-C stops waiting (the job goes on) and says so."""
    t0, last = time.monotonic(), ""
    try:
        sizes = job_sizes(conn, job_id)
        while True:
            p = progress(conn, job_id, sizes)
            line = _progress_line(p)
            if line != last:
                emit(Event("info", "coordinator", step, line, time.monotonic() - t0))
                last = line
            if p.final:
                break
            if p.failures >= MAX_TASK_FAILURES:
                raise BackendError(f"a shard move of the {step} (Citus background job {job_id}) failed "
                                   f"{p.failures} times; Citus keeps retrying it in the background",
                                   details=p.retrying or p.errors,
                                   hint=FOLLOW + f"; fix the cause, or cancel it (SELECT citus_job_cancel({job_id}))")
            time.sleep(poll)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting: the {step} (Citus background job {job_id}) goes on in the "
                          "background", hint=FOLLOW + f" (SELECT citus_job_cancel({job_id}))") from None
    if p.state != "finished":
        raise BackendError(f"the {step} job {job_id} ended {p.state}", details=p.errors,
                           hint="see `streamctl shards rebalance status`; fix the cause and run it again")
    emit(Event("done", "coordinator", step, f"{p.moves_total} shard moves, {_mb(p.bytes_total)}",
               time.monotonic() - t0))
    return p


def run_job(conn: Connection[Any], emit: Emit, transfer_mode: str = "auto", parallel: int = 1,
            drain_only: bool = False) -> JobProgress | None:
    """Start Citus's background rebalance (or attach to the one already running) and wait for it."""
    step = "drain" if drain_only else "rebalance"
    with citus_errors(f"the {step} failed", hint="Citus's background job may still run: see `streamctl shards "
                                                 "rebalance --status`, and run the command again to finish"):
        return _run_job(conn, emit, step, transfer_mode, parallel, drain_only)


def _run_job(conn: Connection[Any], emit: Emit, step: str, transfer_mode: str, parallel: int,
             drain_only: bool) -> JobProgress | None:
    job = active_job(conn)
    if job is not None:
        emit(Event("info", "coordinator", step, f"a rebalance is already running (job {job}): waiting for it"))
        return wait_job(conn, job, emit, step)
    total = parallel * max(1, len(catalog.shard_holders(conn)))
    # Earlier moves leave their source shards for Citus's deferred cleanup; a move back onto such a node
    # fails (and waits for a retry) until they are gone, so clean them up first.
    conn.execute("CALL citus_cleanup_orphaned_resources()")
    with job_settings(conn, parallel, total):
        job = start(conn, drain_only, transfer_mode, parallel > 1)
        if job is None:
            emit(Event("noop", "coordinator", step, "no shard moves needed"))
            return None
        emit(Event("begin", "coordinator", step, f"background job {job}, transfer mode {transfer_mode}"
                   + (f", up to {parallel} moves per node" if parallel > 1 else "")))
        return wait_job(conn, job, emit, step)
