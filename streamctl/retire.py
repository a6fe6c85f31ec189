"""Taking nodes out of a cluster with care: workers drained of their shards and unregistered, a replica's
subscription dropped with its slot on the primary, then the node stopped and its data removed. `scale`
shrinks with it; `up --remove-orphans` and `down --remove-orphans` remove with it the nodes the state knows
and the topology no longer has (the orphans)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import Connection

from streamctl.backends.base import Action, Backend, GroupReleaser, NodeState
from streamctl.backends.mixed import backend_for
from streamctl.citus import catalog as citus_catalog
from streamctl.citus import rebalance as citus_rebalance
from streamctl.citus.nodes import coordinator_conn, worker_address
from streamctl.citus.placement import citus_errors
from streamctl.config.members import citus_groups
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError, RefusedError, StreamctlError
from streamctl.events import Emit, Event
from streamctl.names import subscription_name
from streamctl.replication import catalog as repl_catalog
from streamctl.shardops.common import MoveOptions, deferred_interrupt, integrity_after, integrity_before


def preflight(conn: Connection[Any], ctx: ClusterContext, transfer_mode: str = "auto") -> None:
    """Logical shard moves need wal_level logical on every metadata node and, in `auto` mode, a primary
    key or replica identity on every distributed table (else moves would fail); block_writes needs neither."""
    if transfer_mode == "block_writes":
        return
    problems = []
    for node in [*ctx.topology.nodes_by_role(Role.COORDINATOR), *ctx.topology.nodes_by_role(Role.WORKER)]:
        with ctx.pg_connect(node.name, ctx.topology.metadata.database) as nconn:
            row = nconn.execute("SHOW wal_level").fetchone()
        if not row or row[0] != "logical":
            problems.append(f"{node.name}: wal_level is {row[0] if row else '?'}, needs logical")
    if transfer_mode == "auto":
        problems += [f"{t}: no primary key or replica identity" for t in citus_catalog.tables_without_identity(conn)]
    if problems:
        raise PreflightError("cannot move shards safely", details=problems,
                             hint="run `streamctl up` (it sets wal_level=logical), and give each table a "
                                  "primary key or `ALTER TABLE ... REPLICA IDENTITY FULL`")


def retire_workers(ctx: ClusterContext, backend: Backend, leaving: list[Node], say: Emit,
                   opts: MoveOptions) -> int:
    """Drain the leaving workers (RefusedError, nothing removed, if a shard cannot move), unregister them
    all or none, then remove them (an external one is left running); returns the shard moves made."""
    groups = {g.node.name: g.number for g in citus_groups(ctx.topology) if g.number is not None}
    if groups:
        _refuse_outside_groups(ctx, leaving)
        return _retire_groups(ctx, backend, leaving, [groups[n.name] for n in leaving], say, opts)
    addresses = {worker_address(ctx, n): n.name for n in leaving}
    with coordinator_conn(ctx) as conn, citus_errors("draining or removing the leaving workers failed"):
        moves = citus_rebalance.drain(conn, addresses, say, opts.transfer_mode, opts.parallel)
        with deferred_interrupt():  # unregister every leaving worker, or none
            citus_rebalance.unregister(conn, addresses, say)
    for node in leaving:
        remove_node(backend, node, say)
    return moves


def _refuse_outside_groups(ctx: ClusterContext, workers: list[Node]) -> None:
    """Under HA a worker leaves as its group, whose members' layout comes from the topology: an orphan's is
    gone with it (started bare, a member's data would run without Patroni), so its removal is refused."""
    groups = {g.node.name for g in citus_groups(ctx.topology)}
    outside = [w.name for w in workers if w.name not in groups]
    if groups and outside:
        raise RefusedError(f"removing {', '.join(outside)} under ha needs its group in the topology",
                           hint="put it back in the topology and remove it with `streamctl scale --workers N`")


def _retire_groups(ctx: ClusterContext, backend: Backend, leaving: list[Node], numbers: list[int], say: Emit,
                   opts: MoveOptions) -> int:
    """Under HA, whole groups leave: drained through their current leader; then released (their Patroni
    stopped, their DCS record removed, so the coordinator's Patroni, which registers each group it finds led,
    no longer adds them back) while their servers still answer Citus's metadata sync; then every row of the
    groups unregistered; then every member stopped and removed. Run again after a failure, it finishes."""
    names = dict(zip(numbers, (n.name for n in leaving), strict=True))
    with coordinator_conn(ctx) as conn, citus_errors("draining the leaving worker groups failed"):
        leaders = citus_catalog.group_leaders(conn)
        moves = citus_rebalance.drain(conn, {leaders[g]: names[g] for g in numbers if g in leaders}, say,
                                      opts.transfer_mode, opts.parallel)
    for node in leaving:
        runner = backend_running(backend, node)
        if isinstance(runner, GroupReleaser):
            runner.release_group(node)
    with coordinator_conn(ctx) as conn, citus_errors("removing the leaving worker groups failed"):
        rows = {address: f"{names[g]}'s {role}" for g, address, role in citus_catalog.group_nodes(conn, numbers)}
        with deferred_interrupt():
            citus_rebalance.unregister(conn, rows, say)
    for node in leaving:
        remove_node(backend, node, say)
    return moves


def remove_node(backend: Backend, node: Node, say: Emit) -> None:
    """Stop the node and remove its data; an external node (or one another backend runs) is left alone."""
    runner = backend_running(backend, node)
    if runner is None:
        why = "external" if node.is_external else f"run by the {node.backend} backend"
        say(Event("info", node.name, "remove", f"{why}: left running, no longer in the cluster"))
        return
    runner.remove(node, volumes=True)
    say(Event("done", node.name, "remove", "stopped, data removed"))


def backend_running(backend: Backend, node: Node) -> Backend | None:
    """The backend that may stop or remove `node`; None for an external node, or an orphan recorded by a
    backend this command does not use."""
    return None if node.is_external else backend_for(backend, node)


def _running_to_drain(backend: Backend, worker: Node, say: Emit, timeout: float = 120.0) -> None:
    """A registered worker's shards move off it only while it runs: start a stopped one (data kept)."""
    runner = backend_running(backend, worker)
    if runner is None:
        return  # external: its administrator runs it; the drain says if it cannot be reached
    state = runner.observe(worker).state
    if state is NodeState.MISSING:
        raise RefusedError(f"{worker.name} is still registered with Citus but its server and data are gone: "
                           "its shard placements cannot be moved", hint="restore it, or remove it from Citus "
                           "by hand (citus_remove_node) once you accept losing those placements")
    if state is NodeState.STOPPED:
        say(Event("begin", worker.name, "start", "stopped: started to move its shards off"))
        runner.apply(worker, Action.START)
        runner.readiness(worker, timeout).wait()
        say(Event("done", worker.name, "start", "ready"))


# -- replicas -----------------------------------------------------------------------------------------------
def release_replica(ctx: ClusterContext, replica: Node, say: Emit) -> None:
    """Drop the replica's subscription (its slot on the primary goes with it) while the replica runs. If the
    primary cannot be reached the subscription is dropped alone, and its slot is left, inactive, for `up`
    to drop; a replica that does not run leaves that to `drop_replica_slot`."""
    name = subscription_name(replica.name)
    try:
        conn = ctx.pg_connect(replica.name, ctx.topology.analytics.database)
    except StreamctlError:
        return  # not running: its slot is inactive, drop_replica_slot takes it
    with conn:
        if repl_catalog.subscription(conn, name) is None:
            return
        try:
            repl_catalog.drop_subscription(conn, name)
            say(Event("done", replica.name, "unsubscribe", f"subscription and its slot {name} dropped"))
        except psycopg.Error:
            repl_catalog.drop_subscription_only(conn, name)
            say(Event("info", replica.name, "unsubscribe", f"primary unreachable: subscription dropped, its "
                                                           f"slot {name} is left for `streamctl up` to drop"))


def drop_replica_slot(ctx: ClusterContext, replica: Node, say: Emit) -> None:
    """After the replica is gone: its slot on the primary, if still there and unused."""
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is None:
        return
    slot = subscription_name(replica.name)
    try:
        with ctx.pg_connect(primary.name) as conn:
            active = repl_catalog.slot_active(conn, slot)
            if active is False:
                repl_catalog.drop_slot(conn, slot)
                say(Event("done", primary.name, "drop slot", f"{slot} (of {replica.name}) dropped"))
    except (StreamctlError, psycopg.Error):
        active = True
    if active:
        say(Event("info", primary.name, "drop slot", f"{slot} (of {replica.name}) not dropped now: the next "
                                                     "`streamctl up` drops it once inactive"))


# -- orphans ------------------------------------------------------------------------------------------------
def remove_orphans(ctx: ClusterContext, backend: Backend, say: Emit) -> list[str]:
    """Remove every node the state knows and the topology no longer has: workers drained and unregistered
    first (as `scale` does, rows and checksums compared before and after), replicas unsubscribed and their
    slots dropped; each is forgotten by the state once removed, so a failed run is finished by the next."""
    orphans = ctx.orphans()
    workers = [n for n in orphans if n.role is Role.WORKER]
    removed: list[str] = []
    if workers:
        _retire_orphan_workers(ctx, backend, workers, say)
        removed += [w.name for w in workers]
    for node in orphans:
        if node.role is Role.WORKER:
            continue
        say(Event("begin", node.name, "remove", "no longer in the topology"))
        if node.role is Role.ANALYTICS_REPLICA and not node.is_external:
            release_replica(ctx, node, say)
        remove_node(backend, node, say)
        if node.role is Role.ANALYTICS_REPLICA and not node.is_external:
            drop_replica_slot(ctx, node, say)
        ctx.store.forget([node.name])
        removed.append(node.name)
    return removed


def _retire_orphan_workers(ctx: ClusterContext, backend: Backend, workers: list[Node], say: Emit) -> None:
    _refuse_outside_groups(ctx, workers)
    for w in workers:
        say(Event("begin", w.name, "remove", "no longer in the topology: drain, unregister, remove"))
    try:
        conn = coordinator_conn(ctx)
    except StreamctlError as exc:
        raise RefusedError(f"cannot remove orphan workers {', '.join(w.name for w in workers)}: their shards "
                           f"must move first, and {exc.message}",
                           hint=(f"{exc.hint}; then " if exc.hint else "")
                           + "`streamctl up --remove-orphans` once the coordinator answers (a stopped cluster: "
                             "`streamctl up` first); or put them back in the topology") from exc
    opts = MoveOptions()
    with conn:
        registered = citus_catalog.primary_workers(conn)
        leaving = [w for w in workers if worker_address(ctx, w) in registered]
        for w in leaving:
            _running_to_drain(backend, w, say)
        preflight(conn, ctx, opts.transfer_mode)
        before = integrity_before(conn)
    if leaving:
        retire_workers(ctx, backend, leaving, say, opts)
    for w in workers:
        if w not in leaving:
            remove_node(backend, w, say)
    with coordinator_conn(ctx) as conn:
        integrity_after(conn, before)
    ctx.store.forget([w.name for w in workers])
