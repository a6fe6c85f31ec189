"""What the reviews store must look like: validator, indexes, the gateway's role, and how to converge.

Pure data and pure functions (no server), so the index plan, the role and the list query's index can be
unit-tested here; `services/mongo.py` applies them to a live server and `verify` compares against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamctl.names import REVIEWS_COLLECTION

_REPLY = {
    "bsonType": "object",
    "required": ["user_id", "comment", "created_at"],
    "properties": {
        "user_id": {"bsonType": "string"},
        "comment": {"bsonType": "string", "maxLength": 5000},
        "created_at": {"bsonType": "date"},
    },
}

REVIEWS_VALIDATOR: dict[str, Any] = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": ["content_id", "user_id", "rating", "created_at"],
        "properties": {
            "content_id": {"bsonType": "string", "description": "uuid of the content"},
            "user_id": {"bsonType": "string", "description": "uuid of the user"},
            "rating": {"bsonType": "int", "minimum": 1, "maximum": 10},
            "comment": {"bsonType": "string", "maxLength": 5000},
            "created_at": {"bsonType": "date"},
            "is_spoiler": {"bsonType": "bool"},
            "likes_count": {"bsonType": "int", "minimum": 0},
            "replies": {"bsonType": "array", "items": _REPLY},
        },
    }
}

# The list query (GET /content/{id}/reviews): equality on LIST_FILTER_KEY, then LIST_SORT. The gateway
# builds its query from these two constants and the index below is derived from them, so the index's
# key prefix is the query's filter + sort (the equality-sort rule of compound indexes).
LIST_FILTER_KEY = "content_id"
LIST_SORT: tuple[tuple[str, int], ...] = (("created_at", -1), ("_id", -1))

IndexKeys = tuple[tuple[str, int], ...]


def index_name(keys: IndexKeys) -> str:
    """The name the server would generate: field_direction pairs joined by underscores."""
    return "_".join(f"{field}_{direction}" for field, direction in keys)


_LIST_KEYS: IndexKeys = ((LIST_FILTER_KEY, 1), *LIST_SORT)
REVIEW_INDEXES: dict[str, IndexKeys] = {index_name(_LIST_KEYS): _LIST_KEYS}
# Indexes earlier versions created: dropped when found, since no query uses them any more
# (content_id_1 is a prefix of the list index; nothing filters reviews by user).
RETIRED_INDEXES = ("content_id_1", "user_id_1_created_at_-1")

# The gateway's least-privilege role: only the actions its code runs, only on the reviews collection
# (find also covers aggregate's $match/$group reads). No drop, index, remove or collMod action.
GATEWAY_ROLE = "streamctl_reviews_app"
GATEWAY_ACTIONS = ("find", "insert")


def role_privileges(database: str) -> list[dict[str, Any]]:
    return [{"resource": {"db": database, "collection": REVIEWS_COLLECTION},
             "actions": sorted(GATEWAY_ACTIONS)}]


def normalise_keys(key: Any) -> IndexKeys:
    """Index keys as the server reports them (SON or list of pairs, 1 or 1.0) as comparable tuples."""
    pairs = key.items() if isinstance(key, Mapping) else key
    return tuple((str(f), int(d) if isinstance(d, int | float) else d) for f, d in pairs)


@dataclass(frozen=True)
class IndexAction:
    """One change to the reviews indexes: create, drop (retired or rebuilt), or adopt (keep as is)."""

    kind: str  # "create", "drop", "adopt"
    name: str
    keys: IndexKeys = ()
    adopts: str | None = None  # for "adopt": our name for the index the server holds under `name`

    def describe(self) -> str:
        if self.kind == "adopt":
            return f"adopt index {self.name} (same keys as {self.adopts})"
        if self.kind == "create":
            return f"create index {self.name} {dict(self.keys)}"
        return f"drop index {self.name}"


def index_plan(existing: Mapping[str, Any], wanted: Mapping[str, IndexKeys] = REVIEW_INDEXES,
               retired: tuple[str, ...] = RETIRED_INDEXES) -> list[IndexAction]:
    """Converge by keys, not only by name: `existing` is index_information() (name -> {"key": ...}).

    A wanted name holding other keys is dropped and rebuilt; wanted keys already present under another
    name are adopted (indexes cannot be renamed, and creating the same keys under a second name fails
    with IndexOptionsConflict); retired indexes are dropped unless adopted.
    """
    have = {name: normalise_keys(info["key"]) for name, info in existing.items() if name != "_id_"}
    actions: list[IndexAction] = []
    kept: set[str] = set()
    for name, keys in wanted.items():
        if have.get(name) == keys:
            kept.add(name)
            continue
        if name in have:
            actions.append(IndexAction("drop", name))
        other = next((n for n, k in have.items() if k == keys and n != name), None)
        if other is not None:
            actions.append(IndexAction("adopt", other, keys, adopts=name))
            kept.add(other)
        else:
            actions.append(IndexAction("create", name, keys))
    actions += [IndexAction("drop", name) for name in retired if name in have and name not in kept]
    return actions


def list_query(content_id: str) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The filter and sort of a title's first page of reviews (later pages add a keyset `$or`)."""
    return {LIST_FILTER_KEY: content_id}, list(LIST_SORT)
