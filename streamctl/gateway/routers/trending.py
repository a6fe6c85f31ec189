"""Real-time counters (Redis): today's trending titles, and counting a view."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from streamctl import names
from streamctl.gateway import catalogue
from streamctl.gateway.deps import ContentId, StoresDep, errors
from streamctl.gateway.schemas import Trending, TrendingItem, ViewCount

router = APIRouter(prefix="/api/v1/content", tags=["trending"])


def iso_date_only(value: object) -> object:
    """Only `YYYY-MM-DD` is a date here: the lax parsing would read `0` or `1700000000` as epoch time."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


def today() -> date:
    """Trending days are UTC days, whatever the gateway's time zone."""
    return datetime.now(UTC).date()


@router.get("/trending/daily", response_model=Trending, operation_id="getTrendingDaily",
            responses=errors(422, 503))
async def trending_daily(stores: StoresDep,
                         day: Annotated[date | None, BeforeValidator(iso_date_only),
                                        Query(alias="date", description="UTC day, YYYY-MM-DD (default: today).")]
                         = None,
                         limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Trending:
    """The day's most viewed titles (Redis sorted set), highest score first, with their titles."""
    cache = stores.cache()
    day = day or today()
    ranked = await cache.zrevrange(names.trending_key(day), 0, limit - 1, withscores=True)
    ids: list[UUID] = []
    scores: list[float] = []
    for member, score in ranked:
        try:
            ids.append(UUID(member))
            scores.append(float(score))
        except ValueError:  # a foreign member in the set is skipped, not a 500
            continue
    titles = await catalogue.titles(stores, ids)
    items = [TrendingItem(rank=i + 1, content_id=cid, title=titles.get(cid), score=s)
             for i, (cid, s) in enumerate(zip(ids, scores, strict=True))]
    return Trending(date=day, items=items)


@router.post("/{id}/views/increment", response_model=ViewCount, operation_id="incrementViews",
             responses=errors(404, 422, 503))
async def increment_views(content_id: ContentId, stores: StoresDep) -> ViewCount:
    """Count one view: the title's counter and today's trending score move together (MULTI/EXEC), and
    the day's set gets its TTL (redis.trending_ttl_days)."""
    cache = stores.cache()
    await catalogue.ensure_content(stores, content_id)
    day = today()
    key = names.trending_key(day)
    member = str(content_id)
    async with cache.pipeline(transaction=True) as pipe:
        pipe.incr(names.views_key(member))
        pipe.incr(names.VIEWS_TOTAL_KEY)
        pipe.zincrby(key, 1, member)
        pipe.expire(key, stores.ctx.topology.redis.trending_ttl_days * 86400)
        views, _total, score, _ = await pipe.execute()
    return ViewCount(content_id=content_id, views=int(views), trending_date=day, trending_score=float(score))

