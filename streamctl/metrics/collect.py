"""One collection of the platform's figures: nodes, replication lag, Citus shards, row estimates, Redis.

Every query comes from its engine's home (citus/, replication/, pgconn.row_estimates, readiness probes);
this module only runs them, each bounded (connect and statement timeouts, and a deadline on the whole
section), so a stopped or hung node is a 0 in the snapshot within seconds, never an exception or a hang.
The gateway runs `collect` in the background and scrapes read the last snapshot; `streamctl metrics` runs
it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis as redis_lib  # imported here, not inside a timed probe (a first import is slow on a busy machine)
from psycopg.conninfo import make_conninfo

from streamctl import names
from streamctl.citus import catalog as citus_catalog
from streamctl.citus.nodes import label, node_names
from streamctl.citus.shards import inspect_sizes
from streamctl.config.model import Engine, Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import mongo, postgres, redis
from streamctl.pgconn import archiver_counts, row_estimates
from streamctl.replication import catalog as repl_catalog
from streamctl.replication.catalog import SUBSCRIPTION_WORKER

PROBE_TIMEOUT = 2  # seconds: connect timeout and statement timeout of every query
SECTION_DEADLINE = 6.0  # seconds a section may take before its unfinished probes count as failed

# Which role connects: the gateway's least-privilege role, or streamctl's own (the CLI, like `status`).
Login = Callable[[ClusterContext, str, str | None], str]


def gateway_login(ctx: ClusterContext, node: str, dbname: str | None) -> str:
    return ctx.gateway_conninfo(node, dbname, connect_timeout=PROBE_TIMEOUT, application_name="streamctl-metrics")


def admin_login(ctx: ClusterContext, node: str, dbname: str | None) -> str:
    return ctx.pg_conninfo(node, dbname, connect_timeout=PROBE_TIMEOUT, application_name="streamctl-metrics")


@dataclass(frozen=True)
class NodeSample:
    node: str
    role: str
    engine: str
    up: bool  # answers its probe (a real query, PING, ping) within the bound
    healthy: bool  # up and doing its job: a worker active in pg_dist_node, a replica's subscription running


@dataclass(frozen=True)
class LagSample:
    replica: str
    subscription: str
    lag_bytes: int | None  # None: no slot, or the primary does not answer
    lag_seconds: float | None
    slot_active: bool | None


@dataclass(frozen=True)
class ShardSample:
    table: str
    node: str
    shards: int
    bytes: int


@dataclass
class Snapshot:
    """What one collection saw; `errors` names the sections that failed or ran out of time."""

    collected_at: float = 0.0  # unix time
    duration_seconds: float = 0.0
    nodes: list[NodeSample] = field(default_factory=list)
    lag: list[LagSample] = field(default_factory=list)
    shards: list[ShardSample] = field(default_factory=list)
    skew: dict[str, float] = field(default_factory=dict)  # table -> busiest node's bytes / mean
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (node, table) -> planner estimate
    views_total: int | None = None
    trending_day: str = ""
    trending_size: int | None = None
    citus: bool = False
    archiver: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> (archived, failed), archiving on
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"collected_at": datetime.fromtimestamp(self.collected_at, UTC).isoformat(),
                "duration_seconds": round(self.duration_seconds, 4), "citus": self.citus,
                "nodes": [vars(n) for n in self.nodes], "replication": [vars(x) for x in self.lag],
                "shards": [vars(s) for s in self.shards], "skew": self.skew,
                "rows": [{"node": n, "table": t, "estimate": v} for (n, t), v in sorted(self.rows.items())],
                "views_total": self.views_total,
                "trending": {"day": self.trending_day, "size": self.trending_size},
                "wal_archiving": {n: {"archived": a, "failed": f} for n, (a, f) in sorted(self.archiver.items())},
                "errors": self.errors}


def _connect(ctx: ClusterContext, login: Login, node: str, dbname: str | None) -> psycopg.Connection[Any]:
    conninfo = make_conninfo(login(ctx, node, dbname), options=f"-c statement_timeout={PROBE_TIMEOUT * 1000}")
    return psycopg.connect(conninfo, autocommit=True)


def _probe(ctx: ClusterContext, login: Login, node: Node) -> bool:
    try:
        if node.engine is Engine.POSTGRES:
            return postgres.probe(login(ctx, node.name, node.database))()
        ep = ctx.endpoint(node.name)
        ca = ctx.ca_path() if ctx.tls_on else None
        if node.engine is Engine.REDIS:
            return redis.probe(ep.host, ep.port, ctx.secrets["redis_password"], ca)()
        return mongo.probe(mongo.uri(ep.host, ep.port, ca_file=ca))()
    except Exception:  # noqa: BLE001 - a node that does not answer is a 0, not an error
        return False


def _nodes(ctx: ClusterContext, login: Login, pool: ThreadPoolExecutor, snap: Snapshot) -> None:
    nodes = ctx.topology.nodes()
    futures = {n.name: pool.submit(_probe, ctx, login, n) for n in nodes}
    done, _ = wait(futures.values(), timeout=SECTION_DEADLINE)
    up = {name: f in done and f.result() for name, f in futures.items()}
    active_workers: set[str] = set()
    running_subs: set[str] = set()
    t = ctx.topology
    if t.citus and up.get(t.metadata.coordinator.name):
        try:
            with _connect(ctx, login, t.metadata.coordinator.name, t.metadata.database) as conn:
                by_address = node_names(ctx.endpoints(), ctx.topology)
                active_workers = {label(by_address, *a) for a, on in citus_catalog.primary_workers(conn).items()
                                  if on}
        except Exception as exc:  # noqa: BLE001
            snap.errors["citus.workers"] = _why(exc)
    for replica in t.nodes_by_role(Role.ANALYTICS_REPLICA):
        if not up.get(replica.name):
            continue
        try:
            with _connect(ctx, login, replica.name, replica.database) as conn:
                row = conn.execute(SUBSCRIPTION_WORKER, (names.subscription_name(replica.name),)).fetchone()
            if row and row[0] and row[1]:
                running_subs.add(replica.name)
        except Exception as exc:  # noqa: BLE001
            snap.errors[f"replication.{replica.name}"] = _why(exc)

    def healthy(n: Node) -> bool:
        if not up[n.name]:
            return False
        if n.role is Role.WORKER and t.citus:
            return n.name in active_workers
        if n.role is Role.ANALYTICS_REPLICA:
            return n.name in running_subs
        return True

    snap.nodes = [NodeSample(n.name, n.role.value, n.engine.value, up[n.name], healthy(n)) for n in nodes]
    pg_up = [n for n in nodes if n.engine is Engine.POSTGRES and up[n.name]]
    wait([pool.submit(_archiver, ctx, login, n, snap) for n in pg_up], timeout=SECTION_DEADLINE)


def _archiver(ctx: ClusterContext, login: Login, node: Node, snap: Snapshot) -> None:
    """WAL archiving figures of a node whose archive_mode is on (nothing for the others)."""
    try:
        with _connect(ctx, login, node.name, node.database) as conn:
            archived, failed, on = archiver_counts(conn)
    except Exception as exc:  # noqa: BLE001
        snap.errors[f"archiver.{node.name}"] = _why(exc)
        return
    if on:
        snap.archiver[node.name] = (archived, failed)


def _replication(ctx: ClusterContext, login: Login, snap: Snapshot) -> None:
    t = ctx.topology
    replicas = t.nodes_by_role(Role.ANALYTICS_REPLICA)
    if not t.analytics.enabled or t.analytics.primary is None or not replicas:
        return
    lags: dict[str, tuple[int, bool, float] | None] = {}
    try:
        with _connect(ctx, login, t.analytics.primary.name, t.analytics.database) as conn:
            for r in replicas:
                lags[r.name] = repl_catalog.slot_lag(conn, names.subscription_name(r.name))
            snap.rows.update({(t.analytics.primary.name, table): v
                              for table, v in row_estimates(conn, t.analytics.tables).items()})
    except Exception as exc:  # noqa: BLE001
        snap.errors["replication"] = _why(exc)
    # HA hook: per-standby physical lag (pg_stat_replication on each Patroni leader) joins here when HA exists.
    for r in replicas:
        lag = lags.get(r.name)
        sub = names.subscription_name(r.name)
        snap.lag.append(LagSample(r.name, sub, lag[0] if lag else None, lag[2] if lag else None,
                                  lag[1] if lag else None))


def _citus(ctx: ClusterContext, login: Login, snap: Snapshot) -> None:
    t = ctx.topology
    coordinator = t.metadata.coordinator.name
    try:
        with _connect(ctx, login, coordinator, t.metadata.database) as conn:
            if not t.citus:
                snap.rows.update({(coordinator, table): v for table, v in row_estimates(
                    conn, names.DISTRIBUTED_TABLES + names.REFERENCE_TABLES).items()})
                return
            spreads = inspect_sizes(conn, node_names(ctx.endpoints(), ctx.topology))
            snap.rows.update({("citus", table): v for table, v in citus_catalog.row_estimates(conn).items()})
    except Exception as exc:  # noqa: BLE001
        snap.errors["citus" if t.citus else "metadata"] = _why(exc)
        return
    for s in spreads:
        snap.shards.extend(ShardSample(s.table, n.node, n.shards, n.bytes) for n in s.nodes)
        if s.byte_skew is not None:
            snap.skew[s.table] = round(s.byte_skew, 4)


def _redis(ctx: ClusterContext, snap: Snapshot) -> None:
    snap.trending_day = datetime.now(UTC).date().isoformat()  # trending days are UTC days, as in the gateway
    try:
        client = redis_lib.Redis.from_url(ctx.redis_url(), decode_responses=True, socket_timeout=PROBE_TIMEOUT,
                                          socket_connect_timeout=PROBE_TIMEOUT, **ctx.redis_ssl())
        try:
            pipe = client.pipeline(transaction=False)
            pipe.get(names.VIEWS_TOTAL_KEY)
            pipe.zcard(names.trending_key(snap.trending_day))
            total, size = pipe.execute()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001
        snap.errors["redis"] = _why(exc)
        return
    snap.views_total, snap.trending_size = int(total or 0), int(size)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def collect(ctx: ClusterContext, login: Login = admin_login) -> Snapshot:
    """One bounded pass over the platform; sections run at once, each limited to SECTION_DEADLINE."""
    t = ctx.topology
    if t.mongo.enabled:
        import pymongo  # noqa: F401 - imported before the timed probes, as redis and psycopg are
    started = time.perf_counter()
    snap = Snapshot(collected_at=time.time(), citus=t.citus)
    sections: dict[str, Callable[[], None]] = {}
    # Room for every section, every node's probe and its archiver query at once: nothing waits for a thread.
    pool = ThreadPoolExecutor(max_workers=2 * len(t.nodes()) + 4, thread_name_prefix="streamctl-metrics")
    try:
        sections["nodes"] = lambda: _nodes(ctx, login, pool, snap)
        if t.analytics.enabled:
            sections["replication"] = lambda: _replication(ctx, login, snap)
        sections["citus" if t.citus else "metadata"] = lambda: _citus(ctx, login, snap)
        if t.redis.enabled:
            sections["redis"] = lambda: _redis(ctx, snap)
        futures = {name: pool.submit(body) for name, body in sections.items()}
        done, _ = wait(futures.values(), timeout=SECTION_DEADLINE * 2)
        for name, f in futures.items():
            if f not in done:
                snap.errors.setdefault(name, "timed out")
            elif f.exception() is not None:
                snap.errors.setdefault(name, _why(f.exception()))  # type: ignore[arg-type]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    snap.duration_seconds = time.perf_counter() - started
    return snap
