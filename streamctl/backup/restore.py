"""`streamctl restore` and `up --from-backup`: every PostgreSQL group recovered to the same restore point
(each in isolation: recover.py), the analytics replicas from their primary's backup (replicas.py),
Citus's node catalog rewritten while Citus is not loaded, Redis from the set's snapshot, then `up`
finishes the cluster (its own stanzas, archiving, subscriptions, roles) and `verify` judges it. The
cluster backed up is only read: the new cluster has its own name, ports, secrets and stanzas."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.backup import catalog, ha, recover, replicas
from streamctl.backup.pgbackrest import BackupError, PgBackRest
from streamctl.backup.take import list_sets, redis_dir
from streamctl.backup.target import default_name, new_topology_text
from streamctl.citus import recovery as citus_recovery
from streamctl.config.model import Role
from streamctl.errors import RefusedError, StreamctlError
from streamctl.events import Emit, Event, ignore
from streamctl.parallel import each

if TYPE_CHECKING:
    from streamctl.context import ClusterContext
    from streamctl.verify.runner import VerifyReport


@dataclass(frozen=True)
class Selection:
    """Exactly one of: a set's label, a restore point's name, a timestamp."""

    label: str | None = None
    point: str | None = None
    to: datetime | None = None

    def choose(self, sets: list[catalog.BackupSet]) -> tuple[catalog.BackupSet, str]:
        """The set to restore, and how it was chosen (said to the user)."""
        if self.to is not None:
            chosen = catalog.set_for_time(sets, self.to)
            return chosen, (f"{self.to.isoformat()} resolves to restore point {chosen.point!r} taken at "
                            f"{chosen.point_time} (the latest at or before it: only a restore point is "
                            "consistent across Citus nodes)")
        chosen = catalog.find_set(sets, label=self.label, point=self.point)
        if chosen.point is None:
            raise RefusedError(f"backup set {chosen.label!r} has no restore point (it was not completed), so "
                               "its nodes cannot be recovered to one consistent moment",
                               hint="restore another set (`streamctl backup list`)")
        return chosen, f"backup set {chosen.label!r}, restore point {chosen.point!r} taken at {chosen.point_time}"


@dataclass
class RestoreResult:
    cluster: str
    topology_file: Path | None
    set: catalog.BackupSet
    chosen: str
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # recovery (files + replay), up, verify
    nodes: list[str] = field(default_factory=list)
    redis: bool = False
    verify: VerifyReport | None = None
    kept_aside: list[str] = field(default_factory=list)  # in place: the data the restore replaced

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "topology": str(self.topology_file) if self.topology_file else None,
                "set": self.set.label, "restore_point": self.set.point, "point_time": self.set.point_time,
                "chosen": self.chosen, "nodes": self.nodes, "redis": self.redis, "seconds": round(self.seconds, 3),
                "phases": {k: round(v, 3) for k, v in self.phases.items()},
                "kept_aside": self.kept_aside,
                "verify": self.verify.to_json() if self.verify else None}


# -- restoring --------------------------------------------------------------------------------------
def restore_into(ctx: ClusterContext, backend: Any, selection: Selection, into: str | None = None,
                 emit: Emit = ignore, timeout: float = 120.0) -> RestoreResult:
    """Restore a set of the running cluster `ctx` into a new cluster beside it (`<into>.yaml`)."""
    from streamctl.config.load import load_topology
    from streamctl.context import ClusterContext as Ctx

    tool = PgBackRest(ctx, backend)
    tool.require_restores()
    chosen, how = selection.choose(list_sets(tool))
    name = into or default_name(ctx)
    if ctx.topology_path is None:
        raise RefusedError("the topology file is needed to write the restored cluster's beside it")
    target_file = ctx.topology_path.parent / f"{name}.yaml"
    if name == ctx.topology.cluster:
        raise RefusedError(f"--into {name}: that is the running cluster; restoring in place needs --in-place")
    if target_file.exists():
        raise RefusedError(f"{target_file} already exists", hint="choose another name with --into, or remove it")
    text = new_topology_text(ctx.topology_path, ctx, name)
    target_file.write_text(text)
    try:
        tctx = Ctx.build(load_topology(target_file), target_file.absolute())
        if tctx.store.root.exists():
            raise RefusedError(f"cluster {name} already has state in {tctx.store.root}",
                               hint="choose another name with --into")
        tbe = type(backend)(tctx)  # the same backend as the cluster restored
        data = restore_data(tool, chosen, how, tctx, tbe, emit)
    except BaseException:
        target_file.unlink(missing_ok=True)
        raise
    data.topology_file = target_file
    return finish(data, tctx, tbe, emit, timeout)


def up_from_backup(ctx: ClusterContext, backend: Any, name: str, emit: Emit = ignore,
                   timeout: float = 120.0) -> RestoreResult:
    """A fresh cluster from the repository's set (or restore point) `name` instead of empty databases."""
    from streamctl.backends.base import NodeState

    tool = PgBackRest(ctx, backend)
    tool.require_restores()
    existing = [n.name for n in ctx.topology.nodes() if backend.observe(n).state is not NodeState.MISSING]
    if existing:
        raise RefusedError(f"up --from-backup makes a new cluster, but {', '.join(existing)} already exist",
                           hint="`streamctl down --volumes` first, or restore into a new cluster with "
                                "`streamctl restore --into NAME`")
    sets = list_sets(tool)
    chosen, how = (Selection(label=name) if any(s.label == name for s in sets) else Selection(point=name)).choose(sets)
    # Its own stanzas: a generation apart from the ones it was restored from (same system id).
    ctx.store.update(backup_generation=datetime.now(UTC).strftime("g%Y%m%d%H%M%S"))
    data = restore_data(PgBackRest(ctx, backend), chosen, how, ctx, backend, emit)
    return finish(data, ctx, backend, emit, timeout)


def restore_data(tool: PgBackRest, chosen: catalog.BackupSet, how: str, tctx: ClusterContext,
                 tbe: Any, emit: Emit, discard: bool = True) -> RestoreResult:
    """Every node's data recovered to the set's point, isolated. On failure nothing of it is left: a new
    cluster is discarded whole (`discard`), else only the restored data directories are removed (the
    caller puts back what was there)."""
    from streamctl.backends.base import Action

    started = time.monotonic()
    emit(Event("info", "*", "restore", how))
    nodes = [tctx.topology.node(b.node) for b in chosen.nodes]
    if None in nodes:
        missing = [b.node for b in chosen.nodes if tctx.topology.node(b.node) is None]
        raise BackupError(f"the set holds {', '.join(missing)}, which the topology does not have")
    tbe.preflight(tctx.topology.nodes())
    tbe.prepare([(n, Action.CREATE) for n in tctx.topology.nodes()],
                lambda node, msg: emit(Event("info", node, "prepare", msg)))
    tctx.create_secrets()
    ttool = PgBackRest(tctx, tbe)
    restored = {b.node: recover.RestoredNode(n, ttool.place.restore_site(n), tctx.topology.pg_user)
                for b in chosen.nodes if (n := tctx.topology.node(b.node)) is not None}
    sources = {b.node: b for b in chosen.nodes}
    copies = replicas.from_primary(tctx, ttool, chosen)  # the analytics replicas, from their primary's backup
    for name, (rn, b) in copies.items():
        restored[name], sources[name] = rn, b
    point = chosen.point or ""
    try:
        for rn in restored.values():
            rn.site.prepare()
        ttool.write_config()

        def one(name: str) -> None:
            rn, b = restored[name], sources[name]
            t0 = time.monotonic()
            emit(Event("begin", name, "restore"))
            recover.fetch(ttool, rn, b.stanza, b.label, point)
            rn.site.plain_conf()  # a member's copy made a plain node's, unless its Patroni starts on it
            recover.start_isolated(rn)
            recover.wait_for_target(rn, point)
            if name in copies:
                replicas.make_replica(rn, tctx)
            recover.make_own(rn, tctx.secrets)
            if getattr(rn.site, "patroni", False):  # Patroni starts on this data directly (Docker)
                ha.patroni_roles(rn, tctx)
            emit(Event("done", name, "restore", f"recovered to {point!r} from {b.stanza} {b.label}",
                       time.monotonic() - t0))

        for outcome in each(list(restored), one):
            outcome.get()
        _rewrite_citus(tctx, restored, emit, ha.member_ports(tool.ctx.topology),
                       _renames(tool.ctx, tctx, tbe, restored))
        replicas.link(restored, list(copies))
        for stopped in each(list(restored.values()), recover.stop):
            stopped.get()
    except BaseException:
        for rn in restored.values():
            if rn.site.running():
                rn.pg_ctl("-m", "immediate", "stop")
            if not discard:
                rn.site.discard_data()
            rn.site.close()
        if discard:
            _discard(tctx, tbe)
        raise
    for rn in restored.values():
        rn.site.close()
    redis = _restore_redis(tool, chosen, ttool)
    return RestoreResult(tctx.topology.cluster, tctx.topology_path, chosen, how, nodes=sorted(restored),
                         redis=redis, seconds=time.monotonic() - started)


def finish(result: RestoreResult, tctx: ClusterContext, tbe: Any, emit: Emit,
            timeout: float) -> RestoreResult:
    """`up` makes the restored data a whole cluster; verify judges it. A failure here keeps the data:
    `streamctl up -f FILE` finishes it."""
    from streamctl.runner import Runner

    result.phases["recovery"] = result.seconds
    t0 = time.monotonic()
    Runner(tctx, tbe, emit=emit, timeout=timeout).up()
    if tctx.topology.citus:
        with tctx.pg_connect(tctx.topology.metadata.coordinator.name) as conn:
            citus_recovery.recover_prepared_transactions(conn)
    result.phases["up"] = time.monotonic() - t0
    from streamctl.verify.runner import run_checks

    t0 = time.monotonic()
    result.verify = run_checks(tctx)
    result.phases["verify"] = time.monotonic() - t0
    result.seconds = sum(result.phases.values())
    return result


def _renames(ctx: ClusterContext, tctx: ClusterContext, tbe: Any,
             restored: dict[str, recover.RestoredNode]) -> dict[str, str]:
    """The Citus nodes whose name on their network changes (on Swarm the service's name carries the
    cluster's; on Docker under HA a standby that led when the set was taken): the name the source cluster
    registered -> the restored node's."""
    before = ctx.store.endpoints()
    out = ha.standby_names(ctx.topology, {n: tbe.endpoint(rn.node).internal_host for n, rn in restored.items()})
    for name, rn in restored.items():
        if name in before and rn.node.role in (Role.COORDINATOR, Role.WORKER):
            old, new = before[name].internal_host, tbe.endpoint(rn.node).internal_host
            if old != new:
                out[old] = new
    return out


def _rewrite_citus(tctx: ClusterContext, restored: dict[str, recover.RestoredNode], emit: Emit,
                   members: dict[int, str], names: dict[str, str]) -> None:
    """pg_dist_node pointed at the restored nodes: by port; from a cluster under HA (`members`: each member's
    port and group node) each group's leader, whichever member, points at the group's node and standbys' rows
    go; by name where the node's name on its network changes (`names`, on Swarm)."""
    citus_nodes = [rn for rn in restored.values() if rn.node.role in (Role.COORDINATOR, Role.WORKER)]
    if not tctx.topology.citus or not citus_nodes:
        return
    moves = {rn.source_port: (rn.node.host, rn.node.port) for rn in citus_nodes if rn.source_port}
    moves |= {p: (rn.node.host, rn.node.port) for p, name in members.items() if (rn := restored.get(name))}
    for rn in citus_nodes:
        with rn.connect() as conn:
            changed = (citus_recovery.rewrite_node_addresses(conn, moves, drop_secondaries=bool(members))
                       + citus_recovery.rename_nodes(conn, names))
        emit(Event("done", rn.node.name, "citus nodes", f"{changed} pg_dist_node row(s) pointed at the restored nodes"))


def _restore_redis(tool: PgBackRest, chosen: catalog.BackupSet, ttool: PgBackRest) -> bool:
    """The set's RDB as the base of the new Redis's append-only file (Redis 7 loads the base at start)."""
    source = redis_dir(tool.ctx, chosen.label)
    t = ttool.ctx.topology
    node = t.node(t.redis.name) if t.redis.enabled else None
    if source is None or node is None:
        return False
    store = getattr(tool.place, "snapshots", None)
    if store is not None:  # a repository this machine does not hold
        rdb = store.load(chosen.label)
    else:
        rdb = (source / "redis.rdb").read_bytes() if (source / "redis.rdb").exists() else None
    if rdb is None:
        return False
    ttool.place.put_redis_files(node, {"appendonlydir/appendonly.aof.1.base.rdb": rdb,
                                       "appendonlydir/appendonly.aof.manifest":
                                           b"file appendonly.aof.1.base.rdb seq 1 type b\n"})
    return True


def _discard(tctx: ClusterContext, tbe: Any) -> None:
    """A failed restore leaves nothing: the new cluster's data (directories or volumes), state and
    repository stanzas were never used."""
    try:
        for node in tctx.topology.nodes():
            if hasattr(tbe, "data_dir"):  # the local backend's node directories
                shutil.rmtree(tbe.data_dir(node).parent, ignore_errors=True)
            elif getattr(tbe, "name", "") == "swarm":  # volumes on other hosts: removed by a task there
                tbe.remove(node, volumes=True)
        tbe.teardown(volumes=True)
    except StreamctlError:
        pass
    shutil.rmtree(tctx.store.root, ignore_errors=True)
