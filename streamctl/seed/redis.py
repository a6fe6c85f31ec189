"""Redis loader: view counters and daily trending sets, pipelined; and removal of seeded keys."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from streamctl import names

Progress = Callable[[int], None]
PIPELINE_COMMANDS = 5000  # commands per round trip


def _epoch(day: date) -> int:
    return calendar.timegm(day.timetuple())


def load_view_counters(client: Any, rows: Iterable[tuple[str, int]], progress: Progress | None = None) -> int:
    """SET views:{content_id} for each (content_id, views); returns the keys written."""
    pipe = client.pipeline(transaction=False)
    queued = total = 0
    for content_id, views in rows:
        pipe.set(names.views_key(str(content_id)), int(views))
        queued += 1
        if queued >= PIPELINE_COMMANDS:
            pipe.execute()
            total += queued
            if progress:
                progress(queued)
            queued = 0
    if queued:
        pipe.execute()
        total += queued
        if progress:
            progress(queued)
    return total


class TrendingWriter:
    """ZADD trending:daily:{day} content_id views, pipelined; each key expires `ttl_days` after its day.

    Push-style (add, then close) so it can ride along a scan that feeds other stores too. Members of
    days whose key would already have expired are skipped.
    """

    def __init__(self, client: Any, ttl_days: int, progress: Progress | None = None) -> None:
        self.client = client
        self.ttl_days = ttl_days
        self.progress = progress
        self.written = 0
        self._now = time.time()
        self._pending: dict[str, dict[str, int]] = {}
        self._expires: dict[str, int] = {}
        self._days: dict[date, tuple[str, int]] = {}
        self._queued = 0

    def add(self, day: date, content_id: str, views: int) -> None:
        known = self._days.get(day)  # a scan brings each day many times: its key and expiry once
        if known is None:
            known = self._days[day] = (names.trending_key(day), _epoch(day + timedelta(days=1 + self.ttl_days)))
        key, expires = known
        if expires <= self._now:
            return
        self._pending.setdefault(key, {})[content_id] = views
        self._expires[key] = expires
        self._queued += 1
        if self._queued >= PIPELINE_COMMANDS:
            self.flush()

    def flush(self) -> None:
        if not self._queued:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, members in self._pending.items():
            pipe.zadd(key, members)
            pipe.expireat(key, self._expires[key])
        pipe.execute()
        self.written += self._queued
        if self.progress:
            self.progress(self._queued)
        self._pending.clear()
        self._expires.clear()
        self._queued = 0

    close = flush


SEEDED_PATTERNS = (names.views_key("*"), names.trending_key("*"), names.content_cache_key("*"))


def delete_seeded_keys(client: Any) -> int:
    """Remove counters, trending sets and cached content (stale once titles change); returns keys removed."""
    removed = 0
    for pattern in SEEDED_PATTERNS:
        batch: list[str] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += client.unlink(*batch)
                batch = []
        if batch:
            removed += client.unlink(*batch)
    return removed
