"""After a rotation: each secret's users log in with the new value and work (new logins only, no fallback
to an old password): the superuser, replication (a walsender started after the change, streaming), the
FDW (a query through the foreign tables), the gateway's role, Redis and MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.names import DISTRIBUTED_TABLES, GATEWAY_USER, subscription_name
from streamctl.readiness import Readiness
from streamctl.replication import catalog as repl_catalog
from streamctl.services import passwords
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed

STREAM_TIMEOUT = 60.0  # a subscription's worker restarts within wal_retrieve_retry_interval (5 s) of a change


def primary_now(ctx: ClusterContext) -> datetime | None:
    """The primary's clock, read before a rotation: a walsender started later logged in with the new password."""
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is None or primary.is_external:
        return None
    with ctx.pg_connect(primary.name) as conn:
        row = conn.execute("SELECT now()").fetchone()
    return row[0] if row else None


def _login(conninfo: str, query: str | sql.Composed = "SELECT 1", what: str = "logs in") -> Verdict:
    """A new session with exactly these credentials runs `query`."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(query).fetchall()
    return passed(what)


def run_checks(ctx: ClusterContext, since: datetime | None = None) -> list[CheckResult]:
    t = ctx.topology
    out: list[CheckResult] = []
    for node in passwords.managed_postgres(ctx):
        out.append(guarded("login.superuser", node.name,
                           lambda n=node.name: _login(ctx.pg_conninfo(n))))  # type: ignore[misc]
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if primary is not None:
        for replica in t.nodes_by_role(Role.ANALYTICS_REPLICA):
            out.append(guarded("replication.streaming", replica.name,
                               lambda r=replica.name: _streaming(ctx, primary.name, r, since)))  # type: ignore[misc]
    coordinator = ctx.first(Role.COORDINATOR)
    fdw_on = t.fdw.enabled and primary is not None and coordinator is not None
    if fdw_on and coordinator is not None:
        query = sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(t.fdw.schema_name, t.fdw_tables[0]))
        out.append(guarded("fdw.query", f"{coordinator.name} as {t.pg_user}", lambda: _login(
            ctx.pg_conninfo(coordinator.name, t.metadata.database), query, "foreign table read")))
        if t.gateway.enabled and not coordinator.is_external:
            out.append(guarded("fdw.query", f"{coordinator.name} as {GATEWAY_USER}", lambda: _login(
                ctx.gateway_conninfo(coordinator.name, t.metadata.database), query, "foreign table read")))
    if t.gateway.enabled:
        readers = [n for n in (coordinator, *t.nodes_by_role(Role.ANALYTICS_PRIMARY),
                               *t.nodes_by_role(Role.ANALYTICS_REPLICA)) if n is not None and not n.is_external]
        for node in readers:
            out.append(guarded("gateway.login", node.name, lambda n=node: _gateway(ctx, n)))  # type: ignore[misc]
    redis_node = t.node(t.redis.name)
    if t.redis.enabled and redis_node is not None:
        out.append(guarded("redis.login", redis_node.name, lambda: _redis(ctx)))
    mongo_node = t.node(t.mongo.name)
    if t.mongo.enabled and mongo_node is not None and not mongo_node.is_external:
        out.append(guarded("mongo.login", mongo_node.name, lambda: _mongo(ctx)))
    return out


def _streaming(ctx: ClusterContext, primary: str, replica: str, since: datetime | None) -> Verdict:
    """The replica's slot has a walsender in state streaming, started after `since` when given."""
    slot = subscription_name(replica)
    seen: list[Any] = []

    def probe() -> bool:
        with psycopg.connect(ctx.pg_conninfo(primary), autocommit=True) as conn:
            found = repl_catalog.slot_sender(conn, slot)
        seen.append(found)
        if found is None or not found[0] or found[2] != "streaming":
            return False
        return since is None or (found[1] is not None and found[1] >= since)

    try:
        Readiness(f"replication to {replica}", probe, STREAM_TIMEOUT, interval=0.2).wait()
    except Exception:  # noqa: BLE001 - the last observation says why
        last = seen[-1] if seen else None
        return failed(f"slot {slot} on {primary} has no streaming subscriber logged in after the change "
                      f"(last seen: {_describe(last)})")
    return passed(f"slot {slot} streaming, subscriber logged in with the current password")


def _describe(found: Any) -> str:
    if found is None:
        return "no slot"
    active, started, state = found
    return f"active={active}, walsender started {started}, state {state}" if active else "inactive"


def _gateway(ctx: ClusterContext, node: Any) -> Verdict:
    citus = node.role is Role.COORDINATOR and ctx.topology.citus
    query: str | sql.Composed = "SELECT 1"
    if citus:  # through the coordinator to the workers: Citus logs in there with the gateway's authinfo
        query = sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(DISTRIBUTED_TABLES[0]))
    what = "logs in" + (" and reads a distributed table" if citus else "")
    return _login(ctx.gateway_conninfo(node.name), query, what)


def _redis(ctx: ClusterContext) -> Verdict:
    client = ctx.redis()
    try:
        return passed("PING answered") if client.ping() else failed("no answer to PING")
    finally:
        client.close()


def _mongo(ctx: ClusterContext) -> Verdict:
    for admin in (True, False):
        with ctx.mongo(admin=admin) as client:
            client[ctx.topology.mongo.database if not admin else "admin"].command("ping")
    return passed("root and application users log in")
