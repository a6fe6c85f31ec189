"""`scale --workers N`: grow (provision, register, rebalance) or shrink (drain, check, remove) the Citus
workers, with a preflight before anything moves and rows and checksums compared before and after; its
dry run shows Citus's own plan for the new worker count."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streamctl.backends import select_backend
from streamctl.backends.base import Backend, GroupReleaser
from streamctl.citus import jobs as citus_jobs
from streamctl.citus import rebalance as citus_rebalance
from streamctl.citus.layer import CitusLayer
from streamctl.citus.nodes import coordinator_conn, register_workers, worker_address
from streamctl.citus.placement import citus_errors
from streamctl.config.checks import semantic_errors
from streamctl.config.edit import set_worker_count
from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.drift import DriftError
from streamctl.errors import ConfigError, Interrupted, RefusedError
from streamctl.events import Emit, ignore
from streamctl.retire import preflight, retire_workers
from streamctl.runner import Runner
from streamctl.shardops.common import (
    MoveOptions,
    Nodes,
    deferred_interrupt,
    integrity_after,
    integrity_before,
)
from streamctl.shardops.rebalance import RebalancePlan, describe


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


def resolved(topology: Topology, backend: Backend) -> Topology:
    """The grown or shrunk topology keeps the backend already resolved (`auto` is not resolved again); a
    cluster whose nodes name their own backends (external ones, a mix) resolves per node again."""
    if backend.name not in ("docker", "swarm", "local") or any(n.backend for n in topology.nodes()):
        return topology
    return topology.model_copy(update={"backend": backend.name})


def plan_scale(ctx: ClusterContext, backend: Backend, count: int) -> RebalancePlan:
    """What `scale --workers count` would do: workers to provision or remove, and the shard moves Citus's
    planner would make for them (computed in a rolled-back transaction: nothing changes)."""
    current = ctx.topology.metadata.workers.count
    nodes = Nodes(ctx)
    with coordinator_conn(ctx) as conn, citus_errors("reading Citus's plan failed"):
        if count == current:
            return RebalancePlan()
        new_ctx = ClusterContext(resolved(with_workers(ctx.topology, count), backend), ctx.store,
                                 ctx.topology_path)
        if count > current:
            added = new_ctx.topology.nodes_by_role(Role.WORKER)[current:]
            new_backend = select_backend(new_ctx)
            addresses = [(ep.internal_host, ep.internal_port) for ep in map(new_backend.endpoint, added)]
            for node, address in zip(added, addresses, strict=True):
                nodes.by_address[address] = node.name
            moves = citus_rebalance.plan_with_new_nodes(conn, addresses)
            return RebalancePlan(describe(conn, nodes, moves), provision=[n.name for n in added])
        leaving = ctx.topology.nodes_by_role(Role.WORKER)[count:]
        moves = citus_rebalance.plan_drain(conn, [worker_address(ctx, n) for n in leaving])
        return RebalancePlan(describe(conn, nodes, moves), remove=[n.name for n in leaving])


def scale_workers(ctx: ClusterContext, backend: Backend, count: int, emit: Emit | None = None,
                  update_file: bool = True, options: MoveOptions | None = None,
                  configure: bool = False) -> ScaleResult:
    """Bring the number of Citus workers to `count`; rows and checksums of every Citus table are compared
    before and after; the topology file is updated once the workers are registered (or removed).
    Only the workers added are provisioned and configured, no other node; an external new worker only
    with `configure` (`scale --configure`, as `up --configure`), else it is only checked."""
    say: Emit = emit or ignore
    opts = options or MoveOptions()
    started = time.monotonic()
    with coordinator_conn(ctx) as conn, citus_errors("the scale preflight failed"):  # refuses clearly when Citus is off
        current = ctx.topology.metadata.workers.count
        result = ScaleResult(current, count)
        if count == current:
            return result
        new_topology = with_workers(ctx.topology, count)
        if ctx.topology.ha_on and not isinstance(backend, GroupReleaser):
            raise RefusedError(f"scale under ha is built on the local and Docker backends, and this cluster "
                               f"runs on {backend.name}", hint="change metadata.workers.count with `streamctl up` "
                                                               "after removing the ha section, or wait for that slice")
        preflight(conn, ctx, opts.transfer_mode)
        before = integrity_before(conn)
    new_ctx = ClusterContext(resolved(new_topology, backend), ctx.store, ctx.topology_path)
    new_backend = select_backend(new_ctx)
    if count > current:
        _grow(new_ctx, new_backend, current, say, result, opts, update_file, configure)
    else:
        _shrink(ctx, backend, new_ctx, count, say, result, opts)
        _update_file(ctx, count, update_file, result)
    with coordinator_conn(new_ctx) as conn, citus_errors("checking rows and checksums after scaling failed"):
        result.rows = integrity_after(conn, before)
    result.seconds = time.monotonic() - started
    return result


def _update_file(ctx: ClusterContext, count: int, update_file: bool, result: ScaleResult) -> None:
    if update_file and ctx.topology_path is not None and not result.topology_updated:
        set_worker_count(ctx.topology_path, count)
        result.topology_updated = True


def _grow(ctx: ClusterContext, backend: Backend, current: int, say: Emit, result: ScaleResult,
          opts: MoveOptions, update_file: bool, configure: bool) -> None:
    new_workers = ctx.topology.nodes_by_role(Role.WORKER)[current:]
    result.added = [n.name for n in new_workers]
    count = len(ctx.topology.nodes_by_role(Role.WORKER))
    # Provisions and configures the new workers only (external ones already run): the other nodes are
    # left as they are, and an external new worker is changed only when asked (--configure, as for `up`).
    scope = frozenset(n.name for n in new_workers)
    try:
        try:
            Runner(ctx, backend, emit=say, configure_external=configure, scope=scope).up()
        except DriftError as exc:
            raise DriftError(f"{exc.message} (the new workers are not registered)", details=exc.details,
                             hint=f"`streamctl scale --workers {count} --configure` applies those steps to "
                                  "the new workers; or configure them yourself and run scale again") from exc
        if ctx.topology.ha_on:  # Patroni registers each new group's leader (and its standbys) itself
            CitusLayer(ctx).wait_groups_led()
        with coordinator_conn(ctx) as conn, citus_errors("registering the new workers failed"):
            if not ctx.topology.ha_on:
                with deferred_interrupt():
                    register_workers(conn, [worker_address(ctx, n) for n in new_workers])
            # Registered and active: they belong to the cluster now, whatever happens to the moves.
            _update_file(ctx, count, update_file, result)
            job = citus_jobs.run_job(conn, say, opts.transfer_mode, opts.parallel)
            result.moves = job.moves_total if job else 0
    except KeyboardInterrupt:
        raise Interrupted("interrupted while provisioning or registering the new workers",
                          hint=f"run `streamctl scale --workers {count}` again: it finishes what was started"
                          ) from None


def _shrink(old_ctx: ClusterContext, old_backend: Backend, ctx: ClusterContext, count: int, say: Emit,
            result: ScaleResult, opts: MoveOptions) -> None:
    leaving = old_ctx.topology.nodes_by_role(Role.WORKER)[count:]
    result.removed = [n.name for n in leaving]
    result.moves = retire_workers(old_ctx, old_backend, leaving, say, opts)
    ctx.store.forget(result.removed)  # other nodes the state knows (orphans included) stay known
