"""Reviews (MongoDB): a title's reviews newest first, and posting a review for an existing user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from bson import ObjectId
from fastapi import APIRouter

from streamctl import names
from streamctl.gateway import catalogue, links, pagination
from streamctl.gateway.deps import ContentId, StoresDep, errors
from streamctl.gateway.errors import NotFound
from streamctl.gateway.pagination import Limit, ReviewCursor
from streamctl.gateway.schemas import Review, ReviewIn, ReviewPage, ReviewSummary
from streamctl.gateway.stores import ANALYTICS, Stores
from streamctl.services.mongo_schema import LIST_FILTER_KEY, list_query

router = APIRouter(prefix="/api/v1/content", tags=["reviews"])

# The stored document: content_id/user_id as canonical UUID strings, created_at a BSON date.
_PROJECTION = {"content_id": 1, "user_id": 1, "rating": 1, "comment": 1, "is_spoiler": 1, "created_at": 1,
               "likes_count": 1}


@router.get("/{id}/reviews", response_model=ReviewPage, operation_id="listReviews",
            responses=errors(404, 422, 503))
async def list_reviews(content_id: ContentId, stores: StoresDep, limit: Limit = 20,
                       cursor: ReviewCursor = None) -> ReviewPage:
    """A title's reviews, newest first (keyset on created_at, then id)."""
    collection = stores.reviews_db()[names.REVIEWS_COLLECTION]
    await catalogue.ensure_content(stores, content_id)
    # The filter and sort come from the schema module, which derives the serving index from them.
    query, sort = list_query(str(content_id))  # a typed UUID: never an operator
    if cursor is not None:
        created, oid = pagination.parse_review_cursor(cursor)
        query["$or"] = [{"created_at": {"$lt": created}},
                        {"created_at": created, "_id": {"$lt": ObjectId(oid)}}]
    docs = await collection.find(query, _PROJECTION).sort(sort).limit(limit + 1).to_list()
    more = len(docs) > limit
    items = [_review(d) for d in docs[:limit]]
    last = docs[limit - 1] if more else None
    next_cursor = pagination.review_cursor(last["created_at"], str(last["_id"])) if last else None
    return ReviewPage(items=items, next_cursor=next_cursor)


@router.post("/{id}/reviews", response_model=Review, status_code=201, operation_id="postReview",
             responses={**errors(400, 404, 413, 415, 422, 503), 201: {"links": links.REVIEW_LINKS}})
async def post_review(content_id: ContentId, body: ReviewIn, stores: StoresDep) -> Review:
    """Store a review; the title and the user must exist (the user is looked up on the analytics side)."""
    collection = stores.reviews_db()[names.REVIEWS_COLLECTION]
    await catalogue.ensure_content(stores, content_id)
    await _ensure_user(stores, body.user_id)
    doc: dict[str, Any] = {"content_id": str(content_id), "user_id": str(body.user_id),
                           "rating": body.rating, "comment": body.comment, "is_spoiler": body.is_spoiler,
                           # BSON dates keep milliseconds: truncate now so the answer equals what is stored.
                           "created_at": _now_ms(), "likes_count": 0, "replies": []}
    result = await collection.insert_one(doc)
    doc["_id"] = result.inserted_id
    return _review(doc)


async def review_summary(stores: Stores, content_id: UUID) -> ReviewSummary:
    collection = stores.reviews_db()[names.REVIEWS_COLLECTION]
    cursor = await collection.aggregate([
        {"$match": {LIST_FILTER_KEY: str(content_id)}},
        {"$group": {"_id": None, "count": {"$sum": 1}, "avg": {"$avg": "$rating"}}},
    ])
    rows = await cursor.to_list()
    if not rows:
        return ReviewSummary(count=0, average_rating=None)
    avg = rows[0]["avg"]
    return ReviewSummary(count=rows[0]["count"], average_rating=round(avg, 3) if avg is not None else None)


async def _ensure_user(stores: Stores, user_id: UUID) -> None:
    async with stores.pg(ANALYTICS) as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,))
        if await cur.fetchone() is None:
            raise NotFound(f"user {user_id}")


def _review(doc: dict[str, Any]) -> Review:
    return Review(review_id=str(doc["_id"]), content_id=doc["content_id"], user_id=doc["user_id"],
                  rating=doc["rating"], comment=doc.get("comment", ""),
                  is_spoiler=doc.get("is_spoiler", False), created_at=doc["created_at"],
                  likes_count=doc.get("likes_count", 0))


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
