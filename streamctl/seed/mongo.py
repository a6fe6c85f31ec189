"""MongoDB loader: unordered insert_many batches (the server may apply them in parallel), and reset."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from streamctl import names
from streamctl.errors import BackendError

Progress = Callable[[int], None]
BATCH_DOCUMENTS = 5000
MAX_RULE_CHARS = 600


def insert_reviews(db: Any, documents: Iterable[dict[str, Any]], progress: Progress | None = None) -> int:
    """Insert in unordered batches; a document the collection's validator rejects fails the load."""
    from pymongo.errors import BulkWriteError, PyMongoError

    collection = db[names.REVIEWS_COLLECTION]
    iterator = iter(documents)
    total = 0
    while batch := list(islice(iterator, BATCH_DOCUMENTS)):
        try:
            collection.insert_many(batch, ordered=False)
        except BulkWriteError as exc:
            raise rejected(dict(exc.details)) from exc
        except PyMongoError as exc:
            raise BackendError(f"loading reviews failed: {exc}", hint="is mongo up? try `streamctl status`") \
                from exc
        total += len(batch)
        if progress:
            progress(len(batch))
    return total


def rejected(details: dict[str, Any]) -> BackendError:
    """The error for a batch the server refused, naming the failing rule: a validation failure's
    writeErrors[].errInfo.details says which schema rule each document broke (MongoDB 5.0+)."""
    errors = details.get("writeErrors", [])
    first = errors[0] if errors else {}
    message = f"MongoDB rejected {len(errors)} review(s): {first.get('errmsg', 'write error')}"
    info = first.get("errInfo")
    if info:
        text = json.dumps(info.get("details", info), default=str, separators=(",", ":"))
        message += f"; failing rule: {text[:MAX_RULE_CHARS]}{'…' if len(text) > MAX_RULE_CHARS else ''}"
    return BackendError(message, hint="the reviews validator and the generator disagree "
                                      "(run `streamctl up` if the validator is stale)")


def has_reviews(db: Any) -> bool:
    return db[names.REVIEWS_COLLECTION].find_one({}, {"_id": 1}) is not None


def delete_reviews(db: Any) -> int:
    """Empty the collection but keep it (and its validator and indexes)."""
    return int(db[names.REVIEWS_COLLECTION].delete_many({}).deleted_count)
