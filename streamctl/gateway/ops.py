"""Small read-only operational queries for /health and the dashboard: store health, shards, replication.

Deliberately minimal (`streamctl verify` has the thorough checks): each query is one round trip and
every probe has a short timeout, so a dead node slows a dashboard refresh by seconds, never minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.errors import InvalidSchemaName, UndefinedTable

from streamctl import names
from streamctl.citus.catalog import PLACEMENTS_PER_NODE
from streamctl.citus.jobs import ACTIVE_JOB_STATES, LATEST_JOB_SQL
from streamctl.citus.nodes import label, node_names
from streamctl.config.members import ha_groups
from streamctl.config.model import Role
from streamctl.gateway.errors import StoreUnavailable, as_store_unavailable
from streamctl.gateway.schemas import (
    HaGroup,
    HaMember,
    HaMembers,
    Health,
    Rebalance,
    ReplicaState,
    Replication,
    Shards,
    StoreHealth,
    WorkerShards,
)
from streamctl.gateway.stores import ANALYTICS, FDW, METADATA, MONGO, REDIS, Stores
from streamctl.replication.catalog import PRIMARY_SLOTS, SUBSCRIPTION_WORKER
from streamctl.status import member_rows

PROBE_TIMEOUT = 2.0

async def _timed(check: Callable[[], Awaitable[Any]]) -> tuple[bool, str, float | None]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), PROBE_TIMEOUT)
    except StoreUnavailable as exc:
        return False, "not provisioned" if "provisioned" in exc.message else "unreachable", None
    except (UndefinedTable, InvalidSchemaName):
        return False, "not provisioned", None
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is "unreachable", never its text
        unavailable = as_store_unavailable(exc)
        if unavailable is not None and unavailable.hint is not None:
            return False, unavailable.message.rsplit(": ", 1)[-1], None  # "authentication failed", ...
        return False, "unreachable", None
    return True, "ok", round((time.perf_counter() - started) * 1000, 2)


async def health(stores: Stores) -> Health:
    """Probe every store concurrently; disabled stores are listed as such and do not degrade."""
    t = stores.ctx.topology

    async def pg_probe(store: str, sql: Any) -> None:
        async with stores.pg(store) as conn:
            await conn.execute(sql)

    async def redis_probe() -> None:
        await stores.cache().ping()

    async def mongo_probe() -> None:
        await stores.reviews_db().command("ping")

    checks: list[tuple[str, str | None, Callable[[], Awaitable[Any]]]] = [
        (METADATA, t.metadata.coordinator.name, lambda: pg_probe(METADATA, "SELECT 1")),
        (ANALYTICS, stores.analytics_node, lambda: pg_probe(ANALYTICS, "SELECT 1")),
        (FDW, t.metadata.coordinator.name,
         lambda: pg_probe(FDW, sql.SQL("SELECT 1 FROM {} LIMIT 1").format(stores.fdw_table("users")))),
        (REDIS, t.redis.name, redis_probe),
        (MONGO, t.mongo.name, mongo_probe),
    ]
    enabled = [c for c in checks if stores.enabled(c[0])]
    results = await asyncio.gather(*(_timed(c[2]) for c in enabled))
    by_store = {c[0]: r for c, r in zip(enabled, results, strict=True)}
    out: list[StoreHealth] = []
    for store, node, _ in checks:
        if store not in by_store:
            out.append(StoreHealth(store=store, enabled=False, ok=False, node=None, latency_ms=None,
                                   detail="disabled"))
            continue
        ok, detail, ms = by_store[store]
        out.append(StoreHealth(store=store, enabled=True, ok=ok, node=node, latency_ms=ms, detail=detail))
    healthy = all(s.ok for s in out if s.enabled)
    return Health(status="ok" if healthy else "degraded", cluster=t.cluster, stores=out)


async def shards(stores: Stores) -> Shards:
    """Shard placements per node (distributed and reference), from the Citus metadata."""
    if not stores.ctx.topology.citus:
        return Shards(citus=False, workers=[])
    async with stores.pg(METADATA) as conn, conn.cursor() as cur:
        await cur.execute(PLACEMENTS_PER_NODE)
        rows = await cur.fetchall()
    by_address = node_names(stores.ctx.endpoints(), stores.ctx.topology)
    return Shards(citus=True, workers=[
        WorkerShards(node=label(by_address, r[0], r[1]), host=r[0], port=r[1],
                     distributed=r[2], reference=r[3]) for r in rows])


async def rebalance(stores: Stores) -> Rebalance:
    """The latest rebalance job and how far its moves are (the dashboard shows one in progress)."""
    if not stores.ctx.topology.citus:
        return Rebalance(citus=False)
    async with stores.pg(METADATA) as conn, conn.cursor() as cur:
        await cur.execute(LATEST_JOB_SQL)
        row = await cur.fetchone()
    if row is None:
        return Rebalance(citus=True)
    return Rebalance(citus=True, job_id=row[0], state=row[1], active=row[1] in ACTIVE_JOB_STATES,
                     started_at=row[2], finished_at=row[3], moves_total=row[4], moves_done=row[5], running=row[6])


async def replication(stores: Stores) -> Replication:
    """Each replica's subscription as the replica and the primary see it, with the slot's lag."""
    t = stores.ctx.topology
    primary = t.analytics.primary.name if t.analytics.enabled and t.analytics.primary else None
    if primary is None:
        return Replication(enabled=False, primary=None, primary_reachable=False, replicas=[])
    replicas = [n.name for n in t.nodes_by_role(Role.ANALYTICS_REPLICA)]
    results = await asyncio.gather(_query(stores, primary, PRIMARY_SLOTS),
                                   *(_query(stores, r, SUBSCRIPTION_WORKER, (names.subscription_name(r),))
                                     for r in replicas), return_exceptions=True)
    slots: dict[str, tuple[Any, ...]] = {}
    primary_ok = not isinstance(results[0], BaseException)
    if primary_ok:
        slots = {row[0]: row for row in results[0]}  # type: ignore[union-attr]
    states = []
    for replica, result in zip(replicas, results[1:], strict=True):
        sub = names.subscription_name(replica)
        slot = slots.get(sub)
        if isinstance(result, BaseException):
            state = "unreachable"
        elif not result:
            state = "missing"
        elif not result[0][0] or not result[0][1]:
            state = "stopped"
        else:
            state = (slot[3] if slot and slot[3] else "running") if primary_ok else "running"
        lag_seconds = None
        if slot is not None and slot[3] is not None:
            lag_seconds = slot[4] if slot[4] is not None else 0.0  # null lag: caught up and idle
        states.append(ReplicaState(replica=replica, subscription=sub, state=state,
                                   slot_active=slot[1] if slot else (None if not primary_ok else False),
                                   lag_bytes=slot[2] if slot else None, lag_seconds=lag_seconds))
    return Replication(enabled=True, primary=primary, primary_reachable=primary_ok, replicas=states)


async def ha(stores: Stores) -> HaMembers:
    """Under HA: each group's members with role, state, timeline and lag, as `status` shows them (Patroni's
    REST API, its GET /cluster: a safe endpoint, so the gateway holds no Patroni password)."""
    groups = ha_groups(stores.ctx.topology, stores.ctx.store.pinned())  # Swarm: each member at its host
    rows = await asyncio.gather(*(asyncio.to_thread(member_rows, stores.ctx, g) for g in groups))
    return HaMembers(enabled=bool(groups), groups=[
        HaGroup(node=g.node.name, leader=next((r["name"] for r in found if r["ha_role"] == "leader"), None),
                members=[HaMember(**r) for r in found]) for g, found in zip(groups, rows, strict=True)])


async def _query(stores: Stores, node: str, sql: Any, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One short-lived connection: ops pages are refreshed every few seconds, not per request."""
    conninfo = stores.ctx.gateway_conninfo(node, stores.ctx.topology.analytics.database,
                                           connect_timeout=int(PROBE_TIMEOUT))

    async def run() -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn, \
                conn.cursor() as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    return await asyncio.wait_for(run(), PROBE_TIMEOUT + 1)
