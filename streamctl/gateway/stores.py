"""The gateway's connections to the stores: pools opened once at startup, closed at shutdown.

A store whose role the topology disables has no pool; asking for it raises StoreUnavailable, which the
API turns into a 503 naming the store, so the endpoints of the other stores keep working.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection, sql
from psycopg.errors import InvalidSchemaName, OperationalError, UndefinedTable
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from streamctl.config.model import Role
from streamctl.gateway.errors import StoreUnavailable
from streamctl.gateway.fastcache import CacheReader

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.database import AsyncDatabase

    from streamctl.context import ClusterContext

# Store names as the API reports them (health, 503 messages).
METADATA, ANALYTICS, FDW, REDIS, MONGO = "metadata", "analytics", "fdw", "redis", "mongo"


@dataclass(frozen=True)
class PoolSizes:
    """Connections per pool; the defaults suit one worker process of a small gateway."""

    pg_min: int = 2
    pg_max: int = 16
    redis_max: int = 64
    mongo_max: int = 32
    wait_seconds: float = 5.0  # how long a request waits for a connection before answering 503


@dataclass
class Stores:
    """Open pools by store name; `disabled` maps a store switched off by the topology to the reason."""

    ctx: ClusterContext
    metadata: AsyncConnectionPool[AsyncConnection[Any]] | None = None
    analytics: AsyncConnectionPool[AsyncConnection[Any]] | None = None
    analytics_node: str | None = None  # the node serving analytics reads (replica or primary)
    redis: aioredis.Redis | None = None
    cache_reader: CacheReader | None = None  # pipelined GETs for the cached-content hot path
    mongo_client: AsyncMongoClient[Any] | None = None
    disabled: dict[str, str] = field(default_factory=dict)

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    async def open(cls, ctx: ClusterContext, sizes: PoolSizes | None = None) -> Stores:
        """Open every enabled store's pool without waiting for it: a store that is down at startup
        makes its endpoints answer 503 until it comes back, instead of keeping the gateway down."""
        sizes = sizes or PoolSizes()
        t = ctx.topology
        stores = cls(ctx)
        coordinator = t.metadata.coordinator.name
        stores.metadata = await _pg_pool(ctx, coordinator, t.metadata.database, sizes, "metadata")
        if not t.fdw.enabled or not t.analytics.enabled:
            stores.disabled[FDW] = "the FDW is disabled in the topology (fdw.enabled)"
        if t.analytics.enabled and t.analytics.primary is not None:
            stores.analytics_node = analytics_reader(ctx)
            stores.analytics = await _pg_pool(ctx, stores.analytics_node, t.analytics.database, sizes,
                                               "analytics")
        else:
            stores.disabled[ANALYTICS] = "analytics is disabled in the topology (analytics.enabled)"
        if t.redis.enabled:
            stores.redis = _redis_client(ctx, sizes)
            ep = ctx.endpoint(t.redis.name)
            stores.cache_reader = CacheReader(ep.host, ep.port, ctx.redis_password(), sizes.wait_seconds)
        else:
            stores.disabled[REDIS] = "Redis is disabled in the topology (redis.enabled)"
        if t.mongo.enabled:
            stores.mongo_client = mongo_client(ctx.mongo_uri(), sizes)
        else:
            stores.disabled[MONGO] = "MongoDB is disabled in the topology (mongo.enabled)"
        return stores

    async def close(self) -> None:
        for pool in (self.metadata, self.analytics):
            if pool is not None:
                await pool.close()
        if self.cache_reader is not None:
            await self.cache_reader.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]  # redis>=5; the stubs predate it
        if self.mongo_client is not None:
            await self.mongo_client.close()

    # -- access -----------------------------------------------------------------------------------
    def enabled(self, store: str) -> bool:
        return store not in self.disabled

    def require(self, store: str) -> None:
        if store in self.disabled:
            raise StoreUnavailable(store, self.disabled[store])

    @contextlib.asynccontextmanager
    async def pg(self, store: str) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection of the metadata pool (also for FDW reads) or the analytics pool."""
        self.require(store)
        pool = self.analytics if store == ANALYTICS else self.metadata
        if pool is None:  # pragma: no cover - open() sets a pool for every enabled PostgreSQL store
            raise StoreUnavailable(store, "not configured")
        try:
            async with pool.connection() as conn:
                yield conn
        except (OperationalError, PoolTimeout) as exc:
            # Connection-class errors (also postgres_fdw failing to reach its server) mean the store
            # is down, not that the request is wrong.
            raise StoreUnavailable(store, "not reachable") from exc
        except (UndefinedTable, InvalidSchemaName) as exc:
            raise StoreUnavailable(store, "not provisioned (run `streamctl up`)") from exc

    def fdw_table(self, table: str) -> sql.Identifier:
        """A foreign table on the coordinator, in the topology's FDW schema (fdw.schema)."""
        return sql.Identifier(self.ctx.topology.fdw.schema_name, table)

    def cache(self) -> aioredis.Redis:
        self.require(REDIS)
        assert self.redis is not None
        return self.redis

    def reviews_db(self) -> AsyncDatabase[Any]:
        self.require(MONGO)
        assert self.mongo_client is not None
        return self.mongo_client[self.ctx.topology.mongo.database]


def analytics_reader(ctx: ClusterContext) -> str:
    """The node serving analytics-only reads: the first replica when replica_reads, else the primary."""
    t = ctx.topology
    replicas = t.nodes_by_role(Role.ANALYTICS_REPLICA)
    if t.gateway.replica_reads and replicas:
        return replicas[0].name
    assert t.analytics.primary is not None
    return t.analytics.primary.name


async def _pg_pool(ctx: ClusterContext, node: str, dbname: str, sizes: PoolSizes,
                   label: str) -> AsyncConnectionPool[AsyncConnection[Any]]:
    conninfo = ctx.gateway_conninfo(node, dbname, application_name="streamctl-gateway")
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo, min_size=sizes.pg_min, max_size=sizes.pg_max, timeout=sizes.wait_seconds,
        kwargs={"autocommit": True}, name=f"gateway-{label}", open=False)
    await pool.open(wait=False)
    return pool


def _redis_client(ctx: ClusterContext, sizes: PoolSizes) -> aioredis.Redis:
    import redis.asyncio as aioredis

    pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
        ctx.redis_url(), max_connections=sizes.redis_max, timeout=sizes.wait_seconds,
        decode_responses=True, socket_timeout=sizes.wait_seconds, socket_connect_timeout=sizes.wait_seconds)
    return aioredis.Redis(connection_pool=pool)


def mongo_client(uri: str, sizes: PoolSizes) -> AsyncMongoClient[Any]:
    """The gateway's Mongo client, bounded like the other pools: a request never waits longer than
    `sizes.wait_seconds` for a connection (waitQueueTimeoutMS), to open one (connectTimeoutMS), to
    select the server (serverSelectionTimeoutMS) or for an answer (socketTimeoutMS). pymongo reports
    the first two as ConnectionFailure and a socket timeout as NetworkTimeout (a ConnectionFailure),
    which the API answers with a 503."""
    from pymongo import AsyncMongoClient

    ms = int(sizes.wait_seconds * 1000)
    # Does not connect yet: the first operation does.
    return AsyncMongoClient(uri, maxPoolSize=sizes.mongo_max, tz_aware=True, uuidRepresentation="standard",
                            socketTimeoutMS=ms, waitQueueTimeoutMS=ms, connectTimeoutMS=ms,
                            serverSelectionTimeoutMS=ms)
