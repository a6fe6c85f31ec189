"""User endpoints, read through the FDW on the coordinator: user ids and a user's watch history."""

from __future__ import annotations

from typing import LiteralString

from fastapi import APIRouter
from psycopg import sql
from psycopg.rows import dict_row

from streamctl.gateway import links, pagination
from streamctl.gateway.deps import StoresDep, UserId, errors
from streamctl.gateway.errors import NotFound
from streamctl.gateway.pagination import HistoryCursor, IdCursor, Limit
from streamctl.gateway.schemas import IdPage, WatchEntry, WatchHistoryPage
from streamctl.gateway.stores import FDW

router = APIRouter(prefix="/api/v1/content/users", tags=["users"])

# The history is selected on the analytics side (a materialised CTE over the foreign table, so the
# filter, order and limit are pushed to the remote server), then joined with the catalogue for titles.
# With Citus, the CTE is what lets a foreign table join a distributed one (recursive planning).
HISTORY_SQL = """
WITH h AS MATERIALIZED (
    SELECT history_id, content_id, watched_at, duration_watched_seconds, last_position_seconds
    FROM {{history}}
    WHERE user_id = %(user)s {after}
    ORDER BY watched_at DESC, history_id DESC
    LIMIT %(limit)s
)
SELECT h.history_id, h.content_id, c.title, h.watched_at, h.duration_watched_seconds,
       h.last_position_seconds
FROM h LEFT JOIN content_metadata c ON c.content_id = h.content_id
ORDER BY h.watched_at DESC, h.history_id DESC
"""
# Spelled out rather than as a row comparison so that postgres_fdw can push it to the remote server.
AFTER = "AND (watched_at < %(at)s OR (watched_at = %(at)s AND history_id < %(hid)s))"


@router.get("/ids", response_model=IdPage, operation_id="listUserIds",
            responses={**errors(422, 503), 200: {"links": links.USER_ID_LINKS}})
async def user_ids(stores: StoresDep, limit: Limit = 100, cursor: IdCursor = None) -> IdPage:
    """User ids in id order, read through the FDW (analytics.users on the coordinator)."""
    after = cursor
    users = stores.fdw_table("users")
    async with stores.pg(FDW) as conn, conn.cursor() as cur:
        if after is None:
            await cur.execute(sql.SQL("SELECT user_id FROM {} ORDER BY user_id LIMIT %s").format(users),
                              (limit + 1,))
        else:
            await cur.execute(sql.SQL("SELECT user_id FROM {} WHERE user_id > %s ORDER BY user_id LIMIT %s")
                              .format(users), (after, limit + 1))
        ids = [r[0] for r in await cur.fetchall()]
    more = len(ids) > limit
    ids = ids[:limit]
    return IdPage(items=ids, next_cursor=str(ids[-1]) if more else None)


@router.get("/{userId}/watch-history", response_model=WatchHistoryPage, operation_id="getWatchHistory",
            responses=errors(404, 422, 503))
async def watch_history(user_id: UserId, stores: StoresDep, limit: Limit = 50,
                        cursor: HistoryCursor = None) -> WatchHistoryPage:
    """A user's watch history with titles, newest first; 404 when the user does not exist."""
    params: dict[str, object] = {"user": user_id, "limit": limit + 1}
    after: LiteralString = ""
    if cursor is not None:
        params["at"], params["hid"] = pagination.parse_history_cursor(cursor)
        after = AFTER
    async with stores.pg(FDW) as conn:
        async with conn.cursor() as cur:
            exists = sql.SQL("SELECT 1 FROM {} WHERE user_id = %s").format(stores.fdw_table("users"))
            await cur.execute(exists, (user_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"user {user_id}")
        async with conn.cursor(row_factory=dict_row) as cur:
            query = sql.SQL(HISTORY_SQL.format(after=after)).format(
                history=stores.fdw_table("user_watch_history"))
            await cur.execute(query, params)
            rows = await cur.fetchall()
    more = len(rows) > limit
    items = [WatchEntry(**r) for r in rows[:limit]]
    last = items[-1] if more else None
    next_cursor = pagination.history_cursor(last.watched_at, last.history_id) if last else None
    return WatchHistoryPage(user_id=user_id, items=items, next_cursor=next_cursor)

