"""One job per store: generate its rows and load them, reporting progress per table through a Meter."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from streamctl.context import ClusterContext
from streamctl.seed import catalogue, copyfmt, mongo, postgres
from streamctl.seed import redis as redis_loader
from streamctl.seed.audience import HISTORY_COLUMNS, USER_COLUMNS, UserIndex, history_batches, user_rows
from streamctl.seed.catalogue import ContentIndex
from streamctl.seed.events import Emit, SeedCancelled, SeedEvent, TableResult
from streamctl.seed.redis import TrendingWriter
from streamctl.seed.reviews import review_documents
from streamctl.seed.spec import SeedSpec

HISTORY_LINE = copyfmt.trusted_line("%s\t%s\t%s\t%d\t%d\n")
TRENDING_COLUMNS = ("date", "content_id", "views", "watch_time_minutes")
_DAILY = ("SELECT (watched_at AT TIME ZONE 'UTC')::date AS day, content_id, count(*) AS views, "
          "sum(duration_watched_seconds) / 60 AS minutes FROM user_watch_history")
# The aggregate in pieces by content_id range. A uuid compares byte by byte, so ranges of its first 32 bits
# split it evenly, and a group (one title, one day) lies in one piece whole. A single hash aggregate returns
# nothing until it has read the whole history; a piece returns after its share of that, so the COPY into
# the coordinator starts at once and runs while the rest aggregates (a piece reads its rows through the
# content_id index). Each piece comes back as one value, its rows already in COPY's text format (dates,
# uuids and integers need no escaping): one message instead of one per row, whose reading cost this process
# about as much CPU as the server's whole aggregate. The first piece, 1/256 of the ids, sizes the rest: as many equal
# pieces as keep each near _PIECE_ROWS groups (memory stays flat at any scale), and at least 15.
_PIECE = ("SELECT count(*), string_agg(concat_ws(E'\\t', day, content_id, views, minutes), E'\\n') || E'\\n' "
          f"FROM ({_DAILY} WHERE {{}} GROUP BY 1, 2) AS piece")
_PIECE_ROWS = 20_000
_FIRST_PIECE = 1 << 24  # of the 2**32 values of a uuid's first 32 bits


def _uuid_at(first32: int) -> str:
    return f"{first32:08x}-0000-0000-0000-000000000000"


def _piece_query(lo: int, hi: int) -> str:
    """The piece of ids whose first 32 bits are in [lo, hi); hi = 2**32 is the end of the range."""
    bounds = ([f"content_id >= '{_uuid_at(lo)}'"] if lo else []) + \
        ([f"content_id < '{_uuid_at(hi)}'"] if hi < 1 << 32 else [])
    return _PIECE.format(" AND ".join(bounds))


@dataclass
class Meter:
    """Progress of one table: emits start/advance/done events and stops the load when cancelled."""

    emit: Emit
    cancel: threading.Event
    store: str
    table: str
    total: int | None = None
    rows: int = 0
    started: float = 0.0
    finished: float | None = None

    def __enter__(self) -> Meter:
        self.started = time.monotonic()
        self.emit(SeedEvent("start", self.store, self.table, total=self.total))
        return self

    def advance(self, rows: int) -> None:
        if self.cancel.is_set():
            raise SeedCancelled(self.table)
        self.rows += rows
        self.emit(SeedEvent("advance", self.store, self.table, rows=rows, total=self.total))

    def __exit__(self, *exc: object) -> None:
        self.finished = time.monotonic()
        if exc[0] is None:
            self.emit(SeedEvent("done", self.store, self.table, rows=self.rows, total=self.total,
                                seconds=self.seconds))

    @property
    def seconds(self) -> float:
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    def result(self) -> TableResult:
        return TableResult(self.store, self.table, self.rows, self.seconds)


MeterFactory = Callable[[str, str, "int | None"], Meter]


def _copy(conns: tuple[psycopg.Connection[Any], ...], meter: Meter, columns: tuple[str, ...],
          rows: Iterator[tuple[object, ...]]) -> TableResult:
    """Generate and COPY one table's rows, one COPY stream per connection (postgres.copy_streams)."""
    with meter:
        postgres.copy_streams(conns, meter.table, columns,
                              copyfmt.chunks(copyfmt.batched(rows), copyfmt.escaped_line), meter.advance)
    return meter.result()


def load_catalogue(ctx: ClusterContext, node: str, spec: SeedSpec, content: ContentIndex,
                   meter: MeterFactory) -> list[TableResult]:
    """Reference tables first, then titles, then what points at titles (foreign keys allow no other order).
    The largest, the cast of every title, goes over two COPY streams (postgres.copy_streams)."""
    with ctx.pg_connect(node) as conn, ctx.pg_connect(node) as conn2:
        for c in (conn, conn2):
            postgres.bulk_session(c, ctx.topology.metadata.citus.enabled)
        return [
            _copy((conn,), meter(node, "genres", None), catalogue.GENRE_COLUMNS, catalogue.genre_rows()),
            _copy((conn,), meter(node, "cast_crew", spec.people), catalogue.PEOPLE_COLUMNS,
                  catalogue.people_rows(spec)),
            _copy((conn,), meter(node, "content_metadata", spec.titles), catalogue.CONTENT_COLUMNS,
                  catalogue.content_rows(spec, content)),
            _copy((conn,), meter(node, "content_genres", None), catalogue.CONTENT_GENRE_COLUMNS,
                  catalogue.content_genre_rows(spec, content)),
            _copy((conn, conn2), meter(node, "content_cast_crew", None), catalogue.CAST_COLUMNS,
                  catalogue.cast_rows(spec, content)),
        ]


def load_audience(ctx: ClusterContext, node: str, spec: SeedSpec, content: ContentIndex, users: UserIndex,
                  meter: MeterFactory, commit_rows: int | None) -> list[TableResult]:
    """Users, then their history (formatted with the trusted fast path: it is most of the data)."""
    with ctx.pg_connect(node) as conn:
        done = [_copy((conn,), meter(node, "users", spec.users), USER_COLUMNS, user_rows(spec, users))]
        m = meter(node, "user_watch_history", spec.events)
        with m:
            postgres.copy_chunks(conn, m.table, HISTORY_COLUMNS,
                                 copyfmt.chunks(history_batches(spec, content, users), HISTORY_LINE),
                                 m.advance, commit_rows)
        return [*done, m.result()]


def load_reviews(ctx: ClusterContext, spec: SeedSpec, content: ContentIndex, users: UserIndex,
                 meter: MeterFactory) -> list[TableResult]:
    client = ctx.mongo()
    try:
        m = meter(ctx.topology.mongo.name, "reviews", spec.reviews)
        with m:
            mongo.insert_reviews(client[ctx.topology.mongo.database], review_documents(spec, content, users),
                                 m.advance)
        return [m.result()]
    finally:
        client.close()


def load_aggregates(ctx: ClusterContext, primary: str, coordinator: str, with_redis: bool,
                    meter: MeterFactory) -> list[TableResult]:
    """One scan of the stored history, aggregated per day and title, feeds every derived store.

    The aggregate streams primary -> coordinator by COPY (trending_daily); on its way, Redis gets the
    trending sets of days still within the TTL, and per-title totals (O(titles) memory) for `views:*`.
    """
    client = ctx.redis() if with_redis else None
    views: Counter[str] = Counter()
    try:
        # Two COPY streams into the coordinator (postgres.copy_streams): one is bound by the one server
        # process that parses and routes its rows.
        with ctx.pg_connect(primary) as src, ctx.pg_connect(coordinator) as dst, \
                ctx.pg_connect(coordinator) as dst2:
            for conn in (dst, dst2):
                postgres.bulk_session(conn, ctx.topology.metadata.citus.enabled)
            table = meter(coordinator, "trending_daily", None)
            sets = meter(ctx.topology.redis.name, "trending:daily:*", None) if client else None
            trending = TrendingWriter(client, ctx.topology.redis.trending_ttl_days,
                                      sets.advance if sets else None) if client else None

            days: dict[str, date] = {}

            def tee(pieces: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
                for rows, text in pieces:
                    if trending is not None:
                        for line in text.splitlines():
                            day, content_id, count, _minutes = line.split("\t")
                            views[content_id] += (n := int(count))
                            when = days.get(day) or days.setdefault(day, date.fromisoformat(day))
                            trending.add(when, content_id, n)
                    yield rows, text

            with table, sets or nullcontext():
                postgres.copy_streams((dst, dst2), table.table, TRENDING_COLUMNS, tee(_daily_rows(src)),
                                      table.advance)
                if trending is not None:
                    trending.close()
        if client is None or sets is None:
            return [table.result()]
        counters = meter(ctx.topology.redis.name, "views:*", len(views))
        with counters:
            redis_loader.load_view_counters(client, views.items(), counters.advance)
        return [table.result(), sets.result(), counters.result()]
    finally:
        if client is not None:
            client.close()


def _daily_rows(src: psycopg.Connection[Any]) -> Iterator[tuple[int, str]]:
    """The history's aggregate per day and title as (rows, COPY text), piece after piece (see _PIECE)."""
    src.execute("SET work_mem = '32MB'")  # a piece's groups fit in memory: no spilling to disk
    src.execute("SET DateStyle = ISO")  # days as YYYY-MM-DD, whatever the server's default

    def piece(lo: int, hi: int) -> tuple[int, str] | None:
        row = src.execute(_piece_query(lo, hi)).fetchone()
        return (int(row[0]), str(row[1])) if row and row[0] else None

    first = piece(0, _FIRST_PIECE)
    if first is not None:
        yield first
    rest = (1 << 32) - _FIRST_PIECE
    expected = (first[0] if first else 0) * rest // _FIRST_PIECE
    parts = max(15, -(-expected // _PIECE_ROWS))
    for i in range(parts):
        found = piece(_FIRST_PIECE + rest * i // parts, _FIRST_PIECE + rest * (i + 1) // parts)
        if found is not None:
            yield found
