"""Keyset cursors: the sort key of the last item of a page, so pages stay stable under inserts.

Each cursor's shape is declared in the OpenAPI document by a pattern, and every string the pattern
allows is a valid position (a UUID, or `<epoch time>_<tie-break id>` with bounded digits), so a client
or a fuzzer can never send a document-valid cursor that the API refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]

# Ids in id order: the last id of the previous page.
IdCursor = Annotated[UUID | None, Query(description="`next_cursor` of the previous page (a content or user id).")]

# Reviews: BSON dates hold milliseconds; 13 digits stay below year 2287, inside what datetime holds.
REVIEW_CURSOR_PATTERN = r"^[0-9]{1,13}_[0-9a-f]{24}$"
ReviewCursor = Annotated[str | None, Query(
    pattern=REVIEW_CURSOR_PATTERN,
    description="`next_cursor` of the previous page: `<created_at, epoch milliseconds>_<review_id>`.")]

# Watch history: timestamptz holds microseconds (16 digits: below year 2287); history_id is a bigint.
HISTORY_CURSOR_PATTERN = r"^[0-9]{1,16}_[0-9]{1,18}$"
HistoryCursor = Annotated[str | None, Query(
    pattern=HISTORY_CURSOR_PATTERN,
    description="`next_cursor` of the previous page: `<watched_at, epoch microseconds>_<history_id>`.")]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def review_cursor(created_at: datetime, review_id: str) -> str:
    millis = (created_at - _EPOCH) // timedelta(milliseconds=1)
    return f"{millis}_{review_id}"


def parse_review_cursor(cursor: str) -> tuple[datetime, str]:
    millis, review_id = cursor.split("_", 1)
    return _EPOCH + timedelta(milliseconds=int(millis)), review_id


def history_cursor(watched_at: datetime, history_id: int) -> str:
    micros = (watched_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{history_id}"


def parse_history_cursor(cursor: str) -> tuple[datetime, int]:
    micros, history_id = cursor.split("_", 1)
    return _EPOCH + timedelta(microseconds=int(micros)), int(history_id)
