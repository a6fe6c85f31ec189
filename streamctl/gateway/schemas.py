"""Typed request and response bodies: what the OpenAPI document promises and the handlers return.

Request bodies forbid unknown keys and carry only scalar types, so nothing a client sends can become
a MongoDB operator or a piece of SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    hint: str | None = Field(None, description="What to do about it (503: how to bring the store back).")
    details: list[ErrorDetail] | None = Field(None, description="422: the fields that are not valid.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class IdPage(BaseModel):
    """One page of ids; pass `next_cursor` back as `cursor` for the next page (null: last page)."""

    items: list[UUID]
    next_cursor: str | None


class Content(BaseModel):
    content_id: UUID
    title: str
    original_title: str | None = None
    release_date: date | None = None
    duration_minutes: int | None = None
    content_type: str
    summary: str | None = None
    thumbnail_url: str | None = None
    trailer_url: str | None = None
    rating: Decimal | None = None
    genres: list[str] = []
    created_at: datetime
    updated_at: datetime


class TrendingItem(BaseModel):
    rank: int
    content_id: UUID
    title: str | None  # null when the id is not in the catalogue (any more)
    score: float


class Trending(BaseModel):
    date: date
    items: list[TrendingItem]


class ViewCount(BaseModel):
    content_id: UUID
    views: int
    trending_date: date
    trending_score: float


def _integral_number(value: object) -> object:
    """JSON Schema counts 7.0 as an integer, so the API takes it; `"7"`, `true` and 7.5 stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class ReviewIn(BaseModel):
    """A new review. Strict types: `"rating": "7"` or `{"$gt": 0}` are refused, not coerced."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID
    rating: Annotated[StrictInt, BeforeValidator(_integral_number)] = Field(ge=1, le=10)
    comment: str = Field("", max_length=5000)
    is_spoiler: StrictBool = False


class Review(BaseModel):
    review_id: str
    content_id: UUID
    user_id: UUID
    rating: int
    comment: str
    is_spoiler: bool
    created_at: datetime
    likes_count: int = 0


class ReviewPage(BaseModel):
    items: list[Review]
    next_cursor: str | None


class ReviewSummary(BaseModel):
    count: int
    average_rating: float | None


class WatchStats(BaseModel):
    sessions: int
    viewers: int
    total_seconds: int
    average_seconds: float | None


class ContentDetails(BaseModel):
    """Metadata plus what the other stores know; a section is null when its store is unavailable
    (named in `unavailable`), so one store being down does not hide the rest."""

    content: Content
    reviews: ReviewSummary | None
    views: int | None
    watch: WatchStats | None
    unavailable: list[str]


class WatchEntry(BaseModel):
    history_id: int
    content_id: UUID
    title: str | None
    watched_at: datetime
    duration_watched_seconds: int
    last_position_seconds: int


class WatchHistoryPage(BaseModel):
    user_id: UUID
    items: list[WatchEntry]
    next_cursor: str | None


class StoreHealth(BaseModel):
    store: str
    enabled: bool
    ok: bool
    node: str | None
    latency_ms: float | None
    detail: str  # "ok", "disabled", "unreachable", "not provisioned", "authentication failed", "not authorized"


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    cluster: str
    stores: list[StoreHealth]


class WorkerShards(BaseModel):
    node: str
    host: str
    port: int
    distributed: int
    reference: int


class Shards(BaseModel):
    citus: bool
    workers: list[WorkerShards]


class Rebalance(BaseModel):
    """The latest Citus rebalance job (none yet: job_id null); `active` while it is scheduled or running."""

    citus: bool
    job_id: int | None = None
    state: str | None = None
    active: bool = False
    moves_total: int = 0
    moves_done: int = 0
    running: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ReplicaState(BaseModel):
    replica: str
    subscription: str
    state: str  # streaming, catchup, stopped, missing, unreachable
    slot_active: bool | None
    lag_bytes: int | None
    lag_seconds: float | None


class Replication(BaseModel):
    enabled: bool
    primary: str | None
    primary_reachable: bool
    replicas: list[ReplicaState]


class HaMember(BaseModel):
    name: str
    group: int | str = Field(description="the Citus group number (0 the coordinator), or the analytics primary's name")
    host: str
    port: int
    ha_role: str | None = Field(description="leader, sync_standby or replica; null when Patroni does not list it")
    state: str = Field(description="Patroni's: running, streaming, starting, stopped...; down when not listed")
    timeline: int | None
    lag_bytes: int | None


class HaGroup(BaseModel):
    node: str = Field(description="the topology's node the group serves")
    leader: str | None
    members: list[HaMember]


class HaMembers(BaseModel):
    enabled: bool = Field(description="false when the topology has no ha section (groups then empty)")
    groups: list[HaGroup]


class NodeUp(BaseModel):
    node: str
    role: str
    engine: str
    up: bool
    healthy: bool


class HistoryPoint(BaseModel):
    t: float = Field(description="unix time of the collection")
    lag_seconds: dict[str, float | None] = Field(description="replica -> replay lag in seconds")
    lag_bytes: dict[str, int | None] = Field(description="replica -> bytes its slot has not confirmed")
    shard_bytes: dict[str, int] = Field(description="Citus node -> bytes of its shards (empty when Citus is off)")
    nodes_down: list[str]
    views_per_second: float | None
    requests_per_second: float | None
    p99_seconds: float | None = Field(description="p99 latency of the gateway's requests since the last point")


class MetricsHistory(BaseModel):
    interval: float = Field(description="seconds between two points (gateway.metrics_interval)")
    citus: bool
    nodes: list[NodeUp] = Field(description="each node in the latest collection (empty before the first)")
    points: list[HistoryPoint]
