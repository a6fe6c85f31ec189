"""`streamctl backup`: a base backup of every PostgreSQL group (in parallel), then one restore point named
after the set (Citus's, cluster-wide; a plain one on the analytics primary), WAL switched and archived
everywhere, the point recorded on each node's backup; then Redis's snapshot beside them."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.backup import archiving, catalog, ha
from streamctl.backup.pgbackrest import BackupError, PgBackRest, Stanza, repository_path
from streamctl.citus import recovery as citus_recovery
from streamctl.config.model import Role
from streamctl.errors import RefusedError, StreamctlError
from streamctl.events import Emit, Event, ignore

if TYPE_CHECKING:
    from streamctl.context import ClusterContext

LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
TYPES = ("full", "diff", "incr")


@dataclass
class BackupResult:
    set: catalog.BackupSet
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**self.set.to_json(), "seconds": round(self.seconds, 3)}


def redis_dir(ctx: ClusterContext, label: str | None = None) -> Path | None:
    """Where a directory repository keeps the sets' Redis snapshots (None for S3 repositories)."""
    repo = repository_path(ctx)
    if repo is None:
        return None
    base = repo / "streamctl" / ctx.topology.cluster
    return base / label if label else base


def redis_labels(ctx: ClusterContext, place: Any = None) -> set[str]:
    """The sets that hold a Redis snapshot (a place with its own `snapshots` store keeps them there)."""
    store = getattr(place, "snapshots", None)
    if store is not None:
        return set(store.labels())
    base = redis_dir(ctx)
    if base is None or not base.is_dir():
        return set()
    return {p.name for p in base.iterdir() if (p / "redis.rdb").exists()}


def list_sets(tool: PgBackRest) -> list[catalog.BackupSet]:
    tool.check_repository()
    if tool.place.read_config() is None:
        tool.write_config()
    return catalog.backup_sets(tool, tool.cluster, redis_labels(tool.ctx, tool.place))


def _check_nodes_up(ctx: ClusterContext, stanzas: list[Stanza]) -> None:
    down, unset = [], []
    for st in stanzas:
        try:
            with ctx.pg_connect(st.node.name, connect_timeout=5) as conn:
                row = conn.execute("SELECT current_setting('archive_command')").fetchone()
            if row is None or f"--stanza={st.name} " not in str(row[0]):
                unset.append(st.node.name)
        except StreamctlError as exc:
            down.append(f"{st.node.name}: {exc.message}")
    if unset and not down:
        raise BackupError(f"WAL archiving is not set up on {', '.join(unset)}", hint="run `streamctl up` "
                          "(it creates the stanzas and sets archive_command), then the backup again")
    if down:
        raise BackupError(f"cannot back up: {', '.join(d.split(':')[0] for d in down)} "
                          f"{'is' if len(down) == 1 else 'are'} not reachable", details=down,
                          hint="start it (`streamctl up`) and run the backup again; nothing was taken")


def _segment(conn: Any) -> str:
    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    return str(row[0])


def create_point(ctx: ClusterContext, stanzas: list[Stanza], name: str) -> str:
    """The set's restore point on every node, WAL switched and archived; returns its time (ISO, UTC)."""
    nodes = {st.node.name: st.node for st in stanzas}
    plain = [n for n in nodes.values() if n.role is Role.ANALYTICS_PRIMARY or not ctx.topology.citus]
    coordinator = next((n for n in nodes.values() if n.role is Role.COORDINATOR), None)
    try:
        if ctx.topology.citus and coordinator is not None:
            with ctx.pg_connect(coordinator.name) as conn:
                citus_recovery.create_restore_point(conn, name)
        for node in plain:
            with ctx.pg_connect(node.name) as conn:
                conn.execute("SELECT pg_create_restore_point(%s)", (name,))
    except StreamctlError:
        raise
    except Exception as exc:  # noqa: BLE001 - psycopg's errors name the node that is down
        raise BackupError(f"the restore point {name!r} could not be created: {str(exc).splitlines()[0]}",
                          hint="every node must be up; the base backups were kept but the set is not "
                               "restorable (`backup list` shows it without a restore point)") from None
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    segments = {}
    for name_ in nodes:
        with ctx.pg_connect(name_) as conn:
            segments[name_] = _segment(conn)
    for name_, segment in segments.items():
        archiving.wait_archived(ctx, name_, segment)
    return stamp


def snapshot_redis(ctx: ClusterContext, tool: PgBackRest, label: str) -> bool:
    """BGSAVE, wait for it, copy the RDB file into the set (directory repositories only)."""
    target = redis_dir(ctx, label)
    node = ctx.topology.node(ctx.topology.redis.name) if ctx.topology.redis.enabled else None
    if target is None or node is None or not tool.place.redis_snapshots:
        return False
    client = ctx.redis()
    try:
        before = client.lastsave()
        client.bgsave()
        deadline = time.monotonic() + 300
        while True:
            info = client.info("persistence")
            if not info.get("rdb_bgsave_in_progress") and client.lastsave() != before:
                break
            if time.monotonic() > deadline:
                raise BackupError("redis: BGSAVE did not finish within 300s")
            time.sleep(0.05)
        if info.get("rdb_last_bgsave_status") != "ok":
            raise BackupError("redis: BGSAVE failed", hint="see `streamctl logs redis`")
        cfg = client.config_get("dir") | client.config_get("dbfilename")
    finally:
        client.close()
    data = tool.place.read_file(node, f"{cfg['dir']}/{cfg['dbfilename']}")
    store = getattr(tool.place, "snapshots", None)
    if store is not None:  # a repository this machine does not hold
        store.save(label, data)
        return True
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "redis.rdb.part"
    tmp.write_bytes(data)
    tmp.replace(target / "redis.rdb")
    for p in (target.parent.parent, target.parent, target, target / "redis.rdb"):
        tool.place.own(p)
    return True


def take_backup(tool: PgBackRest, kind: str = "full", label: str | None = None, emit: Emit = ignore,
                ) -> BackupResult:
    ctx = tool.ctx
    started = time.monotonic()
    if kind not in TYPES:
        raise RefusedError(f"unknown backup type {kind!r}", hint="use full, diff or incr")
    label = label or f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if not LABEL.match(label):
        raise RefusedError(f"--label {label!r}: use lowercase letters, digits, '.', '_' and '-' (63 at most)")
    stanzas = tool.stanzas()
    _check_nodes_up(ctx, stanzas)
    existing = list_sets(tool)
    if any(s.label == label for s in existing):
        raise RefusedError(f"a backup set named {label!r} already exists", hint="choose another --label")

    def one(st: Stanza) -> None:
        t0 = time.monotonic()
        emit(Event("begin", st.node.name, f"{kind} backup"))
        group = ha.group_of(ctx.topology, st.node)
        source, said = ha.backup_source(ctx, group, tool.place) if group is not None else ([], "")
        try:
            tool.run(st.name, "backup", f"--type={kind}", *source, f"--annotation={catalog.A_CLUSTER}={tool.cluster}",
                     f"--annotation={catalog.A_NODE}={st.node.name}", f"--annotation={catalog.A_SET}={label}",
                     f"--annotation={catalog.A_TYPE}={kind}", what=f"{st.node.name}: {kind} backup")
        except StreamctlError as exc:
            emit(Event("fail", st.node.name, f"{kind} backup", exc.message))
            raise
        emit(Event("done", st.node.name, f"{kind} backup", f"stanza {st.name} {said}".strip(),
                   time.monotonic() - t0))

    with ThreadPoolExecutor(max_workers=len(stanzas) or 1) as pool:
        futures = [pool.submit(one, st) for st in stanzas]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    t0 = time.monotonic()
    emit(Event("begin", "*", f"restore point {label}"))
    stamp = create_point(ctx, stanzas, label)
    taken = catalog.find_set(catalog.backup_sets(tool, tool.cluster), label=label)
    for st in stanzas:  # recorded only now that the point is archived on every node
        own = next(b for b in taken.nodes if b.stanza == st.name)
        tool.run(st.name, "annotate", f"--set={own.label}", f"--annotation={catalog.A_POINT}={label}",
                 f"--annotation={catalog.A_POINT_TIME}={stamp}", what=f"{st.node.name}: record the restore point")
    emit(Event("done", "*", f"restore point {label}", f"at {stamp}, archived on every node", time.monotonic() - t0))
    if snapshot_redis(ctx, tool, label):
        emit(Event("done", ctx.topology.redis.name, "snapshot", "RDB copied into the set"))
    result = catalog.find_set(list_sets(tool), label=label)
    return BackupResult(result, time.monotonic() - started)
