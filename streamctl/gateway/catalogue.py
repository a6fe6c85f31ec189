"""Content lookups shared by the routers: cache-aside metadata and titles for lists of ids."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from streamctl import names
from streamctl.gateway.errors import NotFound
from streamctl.gateway.schemas import Content
from streamctl.gateway.stores import METADATA, REDIS, Stores

log = logging.getLogger("streamctl.gateway")

# One row per title; genres aggregated beside it. content_genres is colocated with content_metadata and
# genres is a reference table, so with Citus this stays a single-shard (router) query; the id is
# repeated in the subquery so the router planner sees both tables pinned to the same shard.
CONTENT_SQL = """
SELECT c.content_id, c.title, c.original_title, c.release_date, c.duration_minutes, c.content_type,
       c.summary, c.thumbnail_url, c.trailer_url, c.rating, c.created_at, c.updated_at,
       coalesce((SELECT array_agg(g.name ORDER BY g.name)
                 FROM content_genres cg JOIN genres g ON g.genre_id = cg.genre_id
                 WHERE cg.content_id = c.content_id AND cg.content_id = %(id)s), '{}') AS genres
FROM content_metadata c
WHERE c.content_id = %(id)s
"""


async def content_json(stores: Stores, content_id: UUID) -> bytes:
    """The content's JSON, from the cache when there, else from the catalogue (then cached with TTL).

    The cache is an optimisation: when Redis is disabled or failing, the catalogue answers alone.
    """
    key = names.content_cache_key(str(content_id))
    cache = stores.redis if stores.enabled(REDIS) else None
    if cache is not None and stores.cache_reader is not None:
        try:
            cached = await stores.cache_reader.get(key)
            if cached is not None:
                return cached
        except Exception as exc:  # noqa: BLE001 - a cache failure must not fail the read
            log.warning("cache read failed for %s: %s", key, exc)
            cache = None
    content = await load_content(stores, content_id)
    body = content.model_dump_json().encode()
    if cache is not None:
        try:
            await cache.set(key, body, ex=stores.ctx.topology.redis.cache_ttl_seconds)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache write failed for %s: %s", key, exc)
    return body


async def load_content(stores: Stores, content_id: UUID) -> Content:
    async with stores.pg(METADATA) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CONTENT_SQL, {"id": content_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"content {content_id}")
    return Content(**row)


async def ensure_content(stores: Stores, content_id: UUID) -> None:
    """404 unless the title exists; goes through the cache, so repeated calls cost one Redis GET."""
    await content_json(stores, content_id)


async def titles(stores: Stores, ids: list[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    async with stores.pg(METADATA) as conn, conn.cursor() as cur:
        await cur.execute("SELECT content_id, title FROM content_metadata WHERE content_id = ANY(%s)", (ids,))
        rows: list[Any] = await cur.fetchall()
    return {r[0]: r[1] for r in rows}
