"""`seed` orchestration: refuse or reset, load independent stores concurrently, derive the aggregates,
then wait for the analytics replicas. Emits SeedEvents; returns a SeedReport; never prints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from streamctl import names
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, RefusedError, StreamctlError
from streamctl.replication.catchup import wait_for_replicas
from streamctl.seed import jobs, mongo, postgres
from streamctl.seed import redis as redis_loader
from streamctl.seed.audience import user_index
from streamctl.seed.catalogue import content_index
from streamctl.seed.events import Emit, SeedCancelled, SeedEvent, TableResult
from streamctl.seed.spec import SeedSpec

CATALOGUE_TABLES = ("genres", "cast_crew", "content_metadata", "content_genres", "content_cast_crew",
                    "trending_daily")
AUDIENCE_TABLES = ("users", "user_watch_history")


@dataclass(frozen=True)
class SeedOptions:
    scale: float = 1.0
    seed: int = 42
    as_of: date | None = None  # None: today (UTC)
    reset: bool = False
    replica_timeout: float = 600.0
    commit_rows: int | None = 20_000  # history commits in slices: replicas apply one while the next loads
    allow_external: bool = False  # seed writes: external nodes only with explicit confirmation


@dataclass
class SeedReport:
    spec: SeedSpec
    tables: list[TableResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    replicas: dict[str, float] = field(default_factory=dict)  # name -> seconds waited
    reset: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.spec.scale, "seed": self.spec.seed, "as_of": self.spec.as_of.isoformat(),
            "reset": self.reset, "seconds": round(self.seconds, 3),
            "rows": sum(t.rows for t in self.tables),
            "tables": [{"store": t.store, "table": t.table, "rows": t.rows, "seconds": round(t.seconds, 3),
                        "rows_per_second": round(t.rows_per_second)} for t in self.tables],
            "skipped": [{"what": w, "reason": r} for w, r in self.skipped],
            "replicas": [{"name": n, "caught_up_seconds": round(s, 3)} for n, s in self.replicas.items()],
        }


class _Plan:
    """Which stores take part, from the topology: a disabled role is skipped with a reason."""

    def __init__(self, ctx: ClusterContext) -> None:
        t = ctx.topology
        self.coordinator = t.metadata.coordinator.name
        self.primary = t.analytics.primary.name if t.analytics.enabled and t.analytics.primary else None
        self.mongo = t.mongo.enabled
        self.redis = t.redis.enabled
        self.skipped: list[tuple[str, str]] = []
        if self.primary is None:
            self.skipped += [("users, user_watch_history", "analytics is disabled in the topology"),
                             ("trending_daily", "no watch history to derive it from (analytics is disabled)")]
        if not self.mongo:
            self.skipped.append(("reviews", "mongo is disabled in the topology"))
        if not self.redis:
            self.skipped.append(("views:*, trending:daily:*", "redis is disabled in the topology"))
        elif self.primary is None:
            self.skipped.append(("views:*, trending:daily:*", "no watch history (analytics is disabled)"))


def _refuse_external(ctx: ClusterContext, plan: _Plan, options: SeedOptions) -> None:
    """Seeding writes: on nodes streamctl did not create, only when the caller says so explicitly."""
    t = ctx.topology
    targets = [plan.coordinator, plan.primary, t.mongo.name if plan.mongo else None,
               t.redis.name if plan.redis else None]
    external = [n for n in targets if n and (node := t.node(n)) is not None and node.is_external]
    if external and not options.allow_external:
        raise RefusedError(f"seed writes to external node(s) {', '.join(external)}, which streamctl did not "
                           "create", hint="pass --yes-write-external to seed them anyway")


def seed(ctx: ClusterContext, options: SeedOptions, emit: Emit | None = None) -> SeedReport:
    """Fill every enabled store; refuses an already seeded cluster unless options.reset."""
    started = time.monotonic()
    say: Emit = emit or (lambda _e: None)
    spec = SeedSpec(options.scale, options.seed, options.as_of or _today())
    plan = _Plan(ctx)
    _refuse_external(ctx, plan, options)
    report = SeedReport(spec, skipped=list(plan.skipped), reset=options.reset)
    for what, why in plan.skipped:
        say(SeedEvent("skip", "-", what, detail=why))
    if options.reset:
        _reset(ctx, plan, say)
    else:
        _refuse_if_seeded(ctx, plan)

    say(SeedEvent("info", "seed", "indexes", detail="drawing title and user ids"))
    content, users = content_index(spec), user_index(spec)
    cancel = threading.Event()
    lock = threading.Lock()

    def emit_safe(ev: SeedEvent) -> None:
        with lock:
            say(ev)

    def meter(store: str, table: str, total: int | None) -> jobs.Meter:
        return jobs.Meter(emit_safe, cancel, store, table, total)

    first: list[Callable[[], list[TableResult]]] = [
        lambda: jobs.load_catalogue(ctx, plan.coordinator, spec, content, meter)]
    if plan.primary:
        primary = plan.primary
        first.append(lambda: jobs.load_audience(ctx, primary, spec, content, users, meter,
                                                options.commit_rows))
    if plan.mongo:
        first.append(lambda: jobs.load_reviews(ctx, spec, content, users, meter))
    report.tables += _concurrently(first, cancel)

    if plan.primary:
        primary = plan.primary
        second: list[Callable[[], list[TableResult]]] = [
            lambda: jobs.load_aggregates(ctx, primary, plan.coordinator, plan.redis, meter)]

        def replicas() -> list[TableResult]:
            emit_safe(SeedEvent("info", primary, "replicas", detail="waiting for the replicas to catch up"))
            report.replicas = wait_for_replicas(ctx, AUDIENCE_TABLES, options.replica_timeout)
            for name, secs in report.replicas.items():
                emit_safe(SeedEvent("info", name, "replica", detail="caught up", seconds=secs))
            return []

        second.append(replicas)
        report.tables += _concurrently(second, cancel)
    report.seconds = time.monotonic() - started
    return report


def _today() -> date:
    return datetime.now(UTC).date()


def _concurrently(tasks: list[Callable[[], list[TableResult]]], cancel: threading.Event) -> list[TableResult]:
    """Run independent loads in threads; the first failure cancels the others and is raised."""
    results: list[TableResult] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures: list[Future[list[TableResult]]] = [pool.submit(t) for t in tasks]
        for fut in futures:
            try:
                results += fut.result()
            except SeedCancelled:
                continue
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others stopped
                cancel.set()
                errors.append(exc)
    if errors:
        raise _translate(errors[0])
    return results


def _translate(exc: BaseException) -> BaseException:
    """Driver errors from Redis and MongoDB become BackendErrors; ours pass through."""
    if isinstance(exc, StreamctlError):
        return exc
    module = type(exc).__module__
    if module.startswith(("redis", "pymongo")):
        return BackendError(f"{module.split('.')[0]}: {exc}",
                            hint="is the cluster up? try `streamctl status`")
    return exc


def _refuse_if_seeded(ctx: ClusterContext, plan: _Plan) -> None:
    found: list[str] = []
    with ctx.pg_connect(plan.coordinator) as conn:
        if postgres.has_rows(conn, "content_metadata"):
            found.append(f"content_metadata on {plan.coordinator}")
    if plan.primary:
        with ctx.pg_connect(plan.primary) as conn:
            if postgres.has_rows(conn, "users"):
                found.append(f"users on {plan.primary}")
    if plan.mongo:
        client = ctx.mongo()
        try:
            if mongo.has_reviews(client[ctx.topology.mongo.database]):
                found.append(f"{names.REVIEWS_COLLECTION} in {ctx.topology.mongo.name}")
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            client.close()
    if found:
        raise RefusedError("the cluster already holds data: " + ", ".join(found),
                           hint="run `streamctl seed --reset` to empty the seeded tables, collections and "
                                "keys first")


def _refuse_referenced(ctx: ClusterContext, plan: _Plan) -> None:
    """Before anything is emptied: a table of the user's that references a seeded one would lose its rows
    to a cascade (or stop the TRUNCATE half-way), so the reset is refused and that table named."""
    where: list[tuple[str, tuple[str, ...]]] = [(plan.coordinator, CATALOGUE_TABLES)]
    if plan.primary:
        replicas = [n.name for n in ctx.topology.nodes_by_role(Role.ANALYTICS_REPLICA)]
        where += [(n, AUDIENCE_TABLES) for n in (plan.primary, *replicas)]  # a replica's apply would stop
    found = []
    for node, tables in where:
        with ctx.pg_connect(node) as conn:
            found += [f"{node}: {line}" for line in postgres.referencing_tables(conn, tables)]
    if found:
        raise RefusedError("seed --reset would empty tables it does not own: "
                           + ", ".join(line.split(" (", 1)[0] for line in found),
                           details=found,
                           hint="drop or empty the listed foreign keys' tables yourself (or drop the foreign "
                                "keys), then run `streamctl seed --reset` again; nothing was emptied")


def _reset(ctx: ClusterContext, plan: _Plan, say: Emit) -> None:
    """Empty what seed fills; replicas follow the primary's TRUNCATE through replication."""
    _refuse_referenced(ctx, plan)
    with ctx.pg_connect(plan.coordinator) as conn:
        postgres.truncate(postgres.bulk_session(conn, ctx.topology.metadata.citus.enabled), CATALOGUE_TABLES)
    say(SeedEvent("info", plan.coordinator, "reset", detail="catalogue tables emptied"))
    if plan.primary:
        with ctx.pg_connect(plan.primary) as conn:
            postgres.truncate(conn, AUDIENCE_TABLES)
        say(SeedEvent("info", plan.primary, "reset", detail="users and watch history emptied"))
    try:
        if plan.mongo:
            client = ctx.mongo(admin=True)  # the app user's role has no remove action
            try:
                n = mongo.delete_reviews(client[ctx.topology.mongo.database])
            finally:
                client.close()
            say(SeedEvent("info", ctx.topology.mongo.name, "reset", detail=f"{n} reviews deleted"))
        if plan.redis:
            r = ctx.redis()
            try:
                n = redis_loader.delete_seeded_keys(r)
            finally:
                r.close()
            say(SeedEvent("info", ctx.topology.redis.name, "reset", detail=f"{n} keys deleted"))
    except StreamctlError:
        raise
    except Exception as exc:
        raise _translate(exc) from exc
