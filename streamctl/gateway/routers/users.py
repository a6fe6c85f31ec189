"""User endpoints, read through the FDW on the coordinator: user ids and a user's watch history."""

from __future__ import annotations

from typing import LiteralString

from fastapi import APIRouter
from psycopg import sql
from psycopg.rows import dict_row

from streamctl.gateway import catalogue, links, pagination
from streamctl.gateway.deps import StoresDep, UserId, errors
from streamctl.gateway.errors import NotFound
from streamctl.gateway.pagination import HistoryCursor, IdCursor, Limit
from streamctl.gateway.schemas import IdPage, WatchEntry, WatchHistoryPage
from streamctl.gateway.stores import FDW

router = APIRouter(prefix="/api/v1/content/users", tags=["users"])

# One user's history page, selected on the analytics side: filter, order and limit go to the remote
# server. The limit is a literal (a validated int): postgres_fdw pushes LIMIT only when it is a constant,
# and a prepared statement's generic plan would otherwise fetch whole fetch_size batches for a page.
# Titles come afterwards by id (catalogue.titles): a join with the catalogue in the same statement makes
# Citus pull the whole distributed content table to the coordinator for the outer join.
HISTORY_SQL = """
SELECT history_id, content_id, watched_at, duration_watched_seconds, last_position_seconds
FROM {{history}}
WHERE user_id = %(user)s {after}
ORDER BY watched_at DESC, history_id DESC
LIMIT {{limit}}
"""
# Spelled out rather than as a row comparison so that postgres_fdw can push it to the remote server.
AFTER = "AND (watched_at < %(at)s OR (watched_at = %(at)s AND history_id < %(hid)s))"


@router.get("/ids", response_model=IdPage, operation_id="listUserIds",
            responses={**errors(422, 503), 200: {"links": links.USER_ID_LINKS}})
async def user_ids(stores: StoresDep, limit: Limit = 100, cursor: IdCursor = None) -> IdPage:
    """User ids in id order, read through the FDW (analytics.users on the coordinator)."""
    after = cursor
    async with stores.pg(FDW) as conn, conn.cursor() as cur:
        await cur.execute(user_ids_query(stores.fdw_table("users"), after is not None, limit + 1),
                          () if after is None else (after,))
        ids = [r[0] for r in await cur.fetchall()]
    more = len(ids) > limit
    ids = ids[:limit]
    return IdPage(items=ids, next_cursor=str(ids[-1]) if more else None)


@router.get("/{userId}/watch-history", response_model=WatchHistoryPage, operation_id="getWatchHistory",
            responses=errors(404, 422, 503))
async def watch_history(user_id: UserId, stores: StoresDep, limit: Limit = 50,
                        cursor: HistoryCursor = None) -> WatchHistoryPage:
    """A user's watch history with titles, newest first; 404 when the user does not exist."""
    params: dict[str, object] = {"user": user_id}
    after: LiteralString = ""
    if cursor is not None:
        params["at"], params["hid"] = pagination.parse_history_cursor(cursor)
        after = AFTER
    async with stores.pg(FDW) as conn:
        async with conn.cursor() as cur:
            await cur.execute(user_exists_query(stores.fdw_table("users")), (user_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"user {user_id}")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(history_query(stores.fdw_table("user_watch_history"), after, limit + 1), params)
            rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    named = await catalogue.titles(stores, list({r["content_id"] for r in rows}))
    items = [WatchEntry(**r, title=named.get(r["content_id"])) for r in rows]
    last = items[-1] if more else None
    next_cursor = pagination.history_cursor(last.watched_at, last.history_id) if last else None
    return WatchHistoryPage(user_id=user_id, items=items, next_cursor=next_cursor)



# -- the statements, also EXPLAINed by the tests (each must filter on the remote side) --------------------
def user_ids_query(users: sql.Identifier, after: bool, limit: int) -> sql.Composed:
    """A page of user ids; with `after`, one %s parameter: the last id of the previous page."""
    where = sql.SQL("WHERE user_id > %s ") if after else sql.SQL("")
    return sql.SQL("SELECT user_id FROM {} {}ORDER BY user_id LIMIT {}").format(users, where,
                                                                                 sql.Literal(int(limit)))


def user_exists_query(users: sql.Identifier) -> sql.Composed:
    return sql.SQL("SELECT 1 FROM {} WHERE user_id = %s").format(users)


def history_query(history: sql.Identifier, after: LiteralString, limit: int) -> sql.Composed:
    """A page of one user's history; parameters user (and at, hid with `after`)."""
    return sql.SQL(HISTORY_SQL.format(after=after)).format(history=history, limit=sql.Literal(int(limit)))
