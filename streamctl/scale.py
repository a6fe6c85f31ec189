"""`scale --workers N`: grow (provision, register, rebalance) or shrink (drain, check, remove) the Citus
workers, with a preflight before anything moves and row counts compared before and after."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from streamctl.backends import select_backend
from streamctl.backends.base import Backend
from streamctl.config.checks import semantic_errors
from streamctl.config.edit import set_worker_count
from streamctl.config.model import Node, Role, Topology
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, ConfigError, PreflightError, RefusedError
from streamctl.runner import Emit, Event, Runner
from streamctl.verify.shards import coordinator_conn

FINAL_JOB_STATES = ("finished", "failed", "cancelled")


@dataclass
class ScaleResult:
    before: int
    after: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moves: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    topology_updated: bool = False
    seconds: float = 0.0


def with_workers(t: Topology, count: int) -> Topology:
    """The same topology with another worker count (the models are frozen: copy, don't mutate)."""
    workers = t.metadata.workers.model_copy(update={"count": count})
    new = t.model_copy(update={"metadata": t.metadata.model_copy(update={"workers": workers})})
    errors = semantic_errors(new)
    if errors:
        raise ConfigError(f"{count} workers do not fit this topology", details=errors,
                          hint="change metadata.workers.port so the new workers' ports are free")
    return new


def preflight(conn: Connection[Any], ctx: ClusterContext) -> None:
    """Shard moves use logical replication: wal_level logical on every metadata node, and a primary key
    or replica identity on every distributed table (else moves would block writes or fail)."""
    problems = []
    for node in [*ctx.topology.nodes_by_role(Role.COORDINATOR), *ctx.topology.nodes_by_role(Role.WORKER)]:
        with ctx.pg_connect(node.name, ctx.topology.metadata.database) as nconn:
            row = nconn.execute("SHOW wal_level").fetchone()
        if not row or row[0] != "logical":
            problems.append(f"{node.name}: wal_level is {row[0] if row else '?'}, needs logical")
    rows = conn.execute(
        "SELECT p.logicalrelid::regclass::text FROM pg_dist_partition p "
        "JOIN pg_class c ON c.oid = p.logicalrelid WHERE p.partkey IS NOT NULL "
        "AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS "
        "(SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))").fetchall()
    problems += [f"{r[0]}: no primary key or replica identity" for r in rows]
    if problems:
        raise PreflightError("cannot move shards safely", details=problems,
                             hint="run `streamctl up` (it sets wal_level=logical), and give each table a "
                                  "primary key or `ALTER TABLE ... REPLICA IDENTITY FULL`")


def citus_row_counts(conn: Connection[Any]) -> dict[str, int]:
    tables = [r[0] for r in conn.execute("SELECT table_name::text FROM citus_tables ORDER BY 1").fetchall()]
    out = {}
    for table in tables:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # names come from the catalog
        out[table] = int(row[0]) if row else 0
    return out


def _address(ctx: ClusterContext, node: Node) -> tuple[str, int]:
    ep = ctx.endpoint(node.name)
    return ep.internal_host, ep.internal_port


def _register(conn: Connection[Any], ctx: ClusterContext, workers: list[Node]) -> None:
    """Idempotent: `up` registers workers already; this only covers a worker it left unregistered."""
    registered = {(r[0], int(r[1])) for r in conn.execute("SELECT nodename, nodeport FROM pg_dist_node")}
    for node in workers:
        host, port = _address(ctx, node)
        if (host, port) not in registered:
            conn.execute("SELECT citus_add_node(%s, %s)", (host, port))


def rebalance(conn: Connection[Any], emit: Emit, drain_only: bool = False, poll: float = 0.5) -> int:
    """Start Citus's background rebalance, report its progress, and wait for it; returns the moves made."""
    row = conn.execute("SELECT citus_rebalance_start(drain_only => %s)", (drain_only,)).fetchone()
    job = row[0] if row else None
    step = "drain" if drain_only else "rebalance"
    if job is None:
        emit(Event("noop", "coordinator", step, "no shard moves needed"))
        return 0
    emit(Event("begin", "coordinator", step, f"background job {job}"))
    t0, last = time.monotonic(), ""
    details: dict[str, Any] = {}
    while True:
        row = conn.execute("SELECT state::text, details FROM citus_job_status(%s)", (job,)).fetchone()
        state, details = (str(row[0]), dict(row[1] or {})) if row else ("failed", {})
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


def _placements_on(conn: Connection[Any], host: str, port: int) -> int:
    """Distributed-table placements on a node (reference-table copies go with citus_remove_node)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) "
        "JOIN pg_dist_shard s USING (shardid) JOIN pg_dist_partition t USING (logicalrelid) "
        "WHERE n.nodename = %s AND n.nodeport = %s AND t.partkey IS NOT NULL", (host, port)).fetchone()
    return int(row[0]) if row else 0


def scale_workers(ctx: ClusterContext, backend: Backend, count: int, emit: Emit | None = None,
                  update_file: bool = True) -> ScaleResult:
    """Bring the number of Citus workers to `count`; the topology file is updated only on success."""
    say: Emit = emit or (lambda _e: None)
    started = time.monotonic()
    with coordinator_conn(ctx) as conn:  # refuses clearly when Citus is off
        current = ctx.topology.metadata.workers.count
        result = ScaleResult(current, count)
        if count == current:
            return result
        new_topology = with_workers(ctx.topology, count)
        preflight(conn, ctx)
        before = citus_row_counts(conn)
    new_ctx = ClusterContext(new_topology, ctx.store, ctx.topology_path)
    new_backend = select_backend(new_ctx, backend.name)
    if count > current:
        _grow(new_ctx, new_backend, current, say, result)
    else:
        _shrink(ctx, backend, new_ctx, new_backend, count, say, result)
    with coordinator_conn(new_ctx) as conn:
        after = citus_row_counts(conn)
    if after != before:
        changed = [f"{t}: {before.get(t)} -> {after.get(t)}" for t in sorted(set(before) | set(after))
                   if before.get(t) != after.get(t)]
        raise RefusedError("row counts changed while scaling", details=changed,
                           hint="run `streamctl verify` and inspect the listed tables")
    result.rows = after
    if update_file and ctx.topology_path is not None:
        set_worker_count(ctx.topology_path, count)
        result.topology_updated = True
    result.seconds = time.monotonic() - started
    return result


def _grow(ctx: ClusterContext, backend: Backend, current: int, say: Emit, result: ScaleResult) -> None:
    new_workers = ctx.topology.nodes_by_role(Role.WORKER)[current:]
    result.added = [n.name for n in new_workers]
    Runner(ctx, backend, emit=say).up()  # provisions the new workers; its Citus step registers them
    with coordinator_conn(ctx) as conn:
        _register(conn, ctx, new_workers)
        result.moves = rebalance(conn, say)


def _shrink(old_ctx: ClusterContext, old_backend: Backend, ctx: ClusterContext, backend: Backend, count: int,
            say: Emit, result: ScaleResult) -> None:
    leaving = old_ctx.topology.nodes_by_role(Role.WORKER)[count:]
    result.removed = [n.name for n in leaving]
    with coordinator_conn(old_ctx) as conn:
        for node in leaving:
            host, port = _address(old_ctx, node)
            conn.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", (host, port))
        result.moves = rebalance(conn, say, drain_only=True)
        for node in leaving:
            host, port = _address(old_ctx, node)
            left = _placements_on(conn, host, port)
            if left:
                raise RefusedError(f"{node.name} still holds {left} shard placements after draining",
                                   hint="see citus_rebalance_status(); nothing was removed")
        for node in leaving:
            host, port = _address(old_ctx, node)
            conn.execute("SELECT citus_remove_node(%s, %s)", (host, port))
            say(Event("done", node.name, "unregister", f"removed from the coordinator ({host}:{port})"))
    for node in leaving:
        old_backend.remove(node, volumes=True)
        say(Event("done", node.name, "remove", "stopped, data removed"))
    ctx.store.record_endpoints(backend.name, [backend.endpoint(n) for n in ctx.topology.nodes()])
