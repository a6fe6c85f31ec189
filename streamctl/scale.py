"""`scale --workers N`: grow (provision, register, rebalance) or shrink (drain, check, remove) the Citus
workers, with a preflight before anything moves and row counts compared before and after."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from streamctl.backends import select_backend
from streamctl.backends.base import Backend
from streamctl.citus import catalog
from streamctl.citus.nodes import coordinator_conn, register_workers, worker_address
from streamctl.citus.rebalance import drain, rebalance, unregister
from streamctl.config.checks import semantic_errors
from streamctl.config.edit import set_worker_count
from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.errors import ConfigError, PreflightError, RefusedError
from streamctl.events import Emit, Event, ignore
from streamctl.runner import Runner


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
    problems += [f"{t}: no primary key or replica identity" for t in catalog.tables_without_identity(conn)]
    if problems:
        raise PreflightError("cannot move shards safely", details=problems,
                             hint="run `streamctl up` (it sets wal_level=logical), and give each table a "
                                  "primary key or `ALTER TABLE ... REPLICA IDENTITY FULL`")


def scale_workers(ctx: ClusterContext, backend: Backend, count: int, emit: Emit | None = None,
                  update_file: bool = True) -> ScaleResult:
    """Bring the number of Citus workers to `count`; the topology file is updated only on success."""
    say: Emit = emit or ignore
    started = time.monotonic()
    with coordinator_conn(ctx) as conn:  # refuses clearly when Citus is off
        current = ctx.topology.metadata.workers.count
        result = ScaleResult(current, count)
        if count == current:
            return result
        new_topology = with_workers(ctx.topology, count)
        preflight(conn, ctx)
        before = catalog.row_counts(conn)
    new_ctx = ClusterContext(new_topology, ctx.store, ctx.topology_path)
    new_backend = select_backend(new_ctx, backend.name)
    if count > current:
        _grow(new_ctx, new_backend, current, say, result)
    else:
        _shrink(ctx, backend, new_ctx, new_backend, count, say, result)
    with coordinator_conn(new_ctx) as conn:
        after = catalog.row_counts(conn)
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
        register_workers(conn, [worker_address(ctx, n) for n in new_workers])
        result.moves = rebalance(conn, say)


def _shrink(old_ctx: ClusterContext, old_backend: Backend, ctx: ClusterContext, backend: Backend, count: int,
            say: Emit, result: ScaleResult) -> None:
    leaving = old_ctx.topology.nodes_by_role(Role.WORKER)[count:]
    result.removed = [n.name for n in leaving]
    addresses = {worker_address(old_ctx, n): n.name for n in leaving}
    with coordinator_conn(old_ctx) as conn:
        result.moves = drain(conn, addresses, say)
        unregister(conn, addresses, say)
    for node in leaving:
        old_backend.remove(node, volumes=True)
        say(Event("done", node.name, "remove", "stopped, data removed"))
    ctx.store.record_endpoints(backend.name, [backend.endpoint(n) for n in ctx.topology.nodes()])
