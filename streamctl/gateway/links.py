"""OpenAPI links between operations: where an id in one answer can be used next, so that client
generators and stateful fuzzers follow a content id from `/ids` into `/{id}`, its details, reviews and
view counter, and a user id into the watch history."""

from __future__ import annotations

from typing import Any

_FIRST_ID = "$response.body#/items/0"


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters, "description": description}


CONTENT_ID_LINKS: dict[str, Any] = {
    "GetContent": _link("getContent", "The first listed title.", id=_FIRST_ID),
    "GetContentDetails": _link("getContentDetails", "The first listed title's details.", id=_FIRST_ID),
    "ListReviews": _link("listReviews", "The first listed title's reviews.", id=_FIRST_ID),
    "PostReview": _link("postReview", "Review the first listed title.", id=_FIRST_ID),
    "IncrementViews": _link("incrementViews", "Count a view of the first listed title.", id=_FIRST_ID),
}

USER_ID_LINKS: dict[str, Any] = {
    "GetWatchHistory": _link("getWatchHistory", "The first listed user's watch history.", userId=_FIRST_ID),
}

REVIEW_LINKS: dict[str, Any] = {
    "ListReviews": _link("listReviews", "The reviewed title's reviews (the new one comes first).",
                         id="$response.body#/content_id"),
    "GetContentDetails": _link("getContentDetails", "The reviewed title's details (its review summary).",
                               id="$response.body#/content_id"),
}
