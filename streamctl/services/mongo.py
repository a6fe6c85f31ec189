"""MongoDB: the reviews collection with a $jsonSchema validator, its indexes, and a least-privilege user."""

from __future__ import annotations

from typing import Any

from streamctl.backends.base import Backend
from streamctl.config.model import Node
from streamctl.context import MONGO_APP_USER, MONGO_ROOT_USER, ClusterContext
from streamctl.names import REVIEWS_COLLECTION
from streamctl.steps import ConfigStep

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

REVIEW_INDEXES = {
    "content_id_1": [("content_id", 1)],
    "user_id_1_created_at_-1": [("user_id", 1), ("created_at", -1)],
}


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: users, then the reviews collection, when MongoDB is on."""
    t = ctx.topology
    node = t.node(t.mongo.name) if t.mongo.enabled else None
    if node is None:
        return []
    svc = MongoService(ctx, node)
    return [svc.users_step(), svc.reviews_step()]


class MongoService:
    def __init__(self, ctx: ClusterContext, node: Node) -> None:
        self.ctx = ctx
        self.node = node
        self.database = ctx.topology.mongo.database

    def _admin_uri_or_localhost(self) -> str:
        """The root user once it exists; before that, the localhost exception of a fresh --auth mongod."""
        ep = self.ctx.endpoint(self.node.name)
        return f"mongodb://{ep.host}:{ep.port}/?directConnection=true&serverSelectionTimeoutMS=5000"

    def _root_exists(self) -> bool:
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        client: MongoClient[Any] = MongoClient(self.ctx.mongo_uri(admin=True))
        try:
            client.admin.command("ping")
            client.admin.command("usersInfo", MONGO_ROOT_USER)
            return True
        except OperationFailure:
            return False
        finally:
            client.close()

    def users_step(self) -> ConfigStep:
        def pending() -> list[str]:
            if not self._root_exists():
                return [f"create root user {MONGO_ROOT_USER}", f"create app user {MONGO_APP_USER}"]
            with self.ctx.mongo(admin=True) as client:
                found = client[self.database].command("usersInfo", MONGO_APP_USER)["users"]
            return [] if found else [f"create app user {MONGO_APP_USER} (readWrite on {self.database})"]

        def apply() -> None:
            from pymongo import MongoClient

            if not self._root_exists():
                local: MongoClient[Any]
                with MongoClient(self._admin_uri_or_localhost()) as local:
                    local.admin.command("createUser", MONGO_ROOT_USER, pwd=self.ctx.secrets["mongo_password"],
                                        roles=["root"])
            with self.ctx.mongo(admin=True) as client:
                db = client[self.database]
                pw = self.ctx.secrets["mongo_app_password"]
                roles = [{"role": "readWrite", "db": self.database}]
                if db.command("usersInfo", MONGO_APP_USER)["users"]:
                    db.command("updateUser", MONGO_APP_USER, pwd=pw, roles=roles)
                else:
                    db.command("createUser", MONGO_APP_USER, pwd=pw, roles=roles)

        return ConfigStep(self.node.name, "mongo users", pending, apply)

    def reviews_step(self) -> ConfigStep:
        def pending() -> list[str]:
            with self.ctx.mongo(admin=True) as client:
                db = client[self.database]
                info = list(db.list_collections(filter={"name": REVIEWS_COLLECTION}))
                if not info:
                    return [f"create collection {REVIEWS_COLLECTION} with validator and indexes"]
                out = []
                if info[0].get("options", {}).get("validator") != REVIEWS_VALIDATOR:
                    out.append("update the reviews validator")
                have = set(db[REVIEWS_COLLECTION].index_information())
                out += [f"create index {name}" for name in REVIEW_INDEXES if name not in have]
                return out

        def apply() -> None:
            with self.ctx.mongo(admin=True) as client:
                db = client[self.database]
                if REVIEWS_COLLECTION not in db.list_collection_names():
                    db.create_collection(REVIEWS_COLLECTION, validator=REVIEWS_VALIDATOR,
                                         validationLevel="strict", validationAction="error")
                else:
                    db.command("collMod", REVIEWS_COLLECTION, validator=REVIEWS_VALIDATOR,
                               validationLevel="strict", validationAction="error")
                for name, keys in REVIEW_INDEXES.items():
                    db[REVIEWS_COLLECTION].create_index(keys, name=name)

        return ConfigStep(self.node.name, "reviews collection", pending, apply)
