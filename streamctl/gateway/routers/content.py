"""Content catalogue endpoints: ids, one title (cache-aside), and a title's details across stores."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from psycopg import sql

from streamctl import names
from streamctl.gateway import catalogue, links
from streamctl.gateway.deps import ContentId, StoresDep, errors
from streamctl.gateway.errors import ApiError, store_of
from streamctl.gateway.pagination import IdCursor, Limit
from streamctl.gateway.routers.reviews import review_summary
from streamctl.gateway.schemas import Content, ContentDetails, IdPage, WatchStats
from streamctl.gateway.stores import FDW, METADATA, MONGO, REDIS, Stores

log = logging.getLogger("streamctl.gateway")
router = APIRouter(prefix="/api/v1/content", tags=["content"])

WATCH_STATS_SQL = """
SELECT count(*), count(DISTINCT user_id), coalesce(sum(duration_watched_seconds), 0),
       avg(duration_watched_seconds)::float8
FROM {history} WHERE content_id = %s
"""


@router.get("/ids", response_model=IdPage, operation_id="listContentIds",
            responses={**errors(422, 503), 200: {"links": links.CONTENT_ID_LINKS}})
async def content_ids(stores: StoresDep, limit: Limit = 100, cursor: IdCursor = None) -> IdPage:
    """Content ids in id order, a page at a time (keyset pagination: stable while titles are added)."""
    after = cursor
    async with stores.pg(METADATA) as conn, conn.cursor() as cur:
        if after is None:
            await cur.execute("SELECT content_id FROM content_metadata ORDER BY content_id LIMIT %s",
                              (limit + 1,))
        else:
            await cur.execute("SELECT content_id FROM content_metadata WHERE content_id > %s "
                              "ORDER BY content_id LIMIT %s", (after, limit + 1))
        ids = [r[0] for r in await cur.fetchall()]
    more = len(ids) > limit
    ids = ids[:limit]
    return IdPage(items=ids, next_cursor=str(ids[-1]) if more else None)


@router.get("/{id}", response_model=Content, operation_id="getContent", responses=errors(404, 422, 503))
async def content(content_id: ContentId, request: Request) -> Response:
    """One title's metadata; served from the Redis cache when there (TTL redis.cache_ttl_seconds)."""
    # The hot path: the stores come from app.state directly rather than through a dependency, and the
    # cached JSON is returned as is (no model validation or re-serialisation).
    body = await catalogue.content_json(request.app.state.stores, content_id)
    return Response(body, media_type="application/json")


@router.get("/{id}/details", response_model=ContentDetails, operation_id="getContentDetails",
            responses=errors(404, 422, 503))
async def details(content_id: ContentId, stores: StoresDep) -> ContentDetails:
    """Metadata + review summary + live view count + watch statistics (through the FDW), fetched
    concurrently; a section whose store is unavailable is null and named in `unavailable`."""
    body = await catalogue.content_json(stores, content_id)
    results = await asyncio.gather(review_summary(stores, content_id), _views(stores, content_id),
                                   _watch_stats(stores, content_id), return_exceptions=True)
    unavailable: list[str] = []
    sections: list[Any] = []
    for store, result in zip((MONGO, REDIS, FDW), results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, ApiError) and store_of(result) is None:
                raise result
            unavailable.append(store)
            sections.append(None)
        else:
            sections.append(result)
    return ContentDetails(content=Content.model_validate_json(body), reviews=sections[0], views=sections[1],
                          watch=sections[2], unavailable=unavailable)


async def _views(stores: Stores, content_id: UUID) -> int:
    value = await stores.cache().get(names.views_key(str(content_id)))
    return int(value) if value is not None else 0


async def _watch_stats(stores: Stores, content_id: UUID) -> WatchStats:
    async with stores.pg(FDW) as conn, conn.cursor() as cur:
        await cur.execute(sql.SQL(WATCH_STATS_SQL).format(history=stores.fdw_table("user_watch_history")),
                          (content_id,))
        row = await cur.fetchone()
    assert row is not None
    return WatchStats(sessions=row[0], viewers=row[1], total_seconds=row[2], average_seconds=row[3])

