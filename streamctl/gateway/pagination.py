"""Opaque keyset cursors: the sort key of the last item of a page, so pages stay stable under inserts."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from streamctl.gateway.errors import ApiError

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_=-]+$",
                                     description="`next_cursor` of the previous page.")]


def encode(*parts: Any) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else p for p in parts],
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode(cursor: str, *kinds: type) -> list[Any]:
    """The parts of a cursor, checked against `kinds` (datetime, int, str); 422 if it is not ours."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for part, kind in zip(parts, kinds, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(part))
            elif (kind is int and isinstance(part, int) and not isinstance(part, bool)) or \
                    (kind is str and isinstance(part, str)):
                out.append(part)
            else:
                raise ValueError("wrong type")
        return out
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "cursor is not valid; pass back a next_cursor unchanged") \
            from None


def uuid_cursor(cursor: str | None) -> UUID | None:
    """The last id of the previous page, for lists ordered by a UUID key."""
    if cursor is None:
        return None
    try:
        return UUID(cursor)
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor is not valid; pass back a next_cursor unchanged") \
            from None
