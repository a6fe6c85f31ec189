"""MongoDB: the root and application users (with password rotation), the gateway's role, the reviews
collection with its validator, and indexes converged by keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamctl.atomic import write_file
from streamctl.backends.base import Backend
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.engines import mongo as mongo_engine
from streamctl.errors import BackendError
from streamctl.names import MONGO_APP_USER, MONGO_ROOT_USER, REVIEWS_COLLECTION
from streamctl.services.mongo_schema import (
    GATEWAY_ROLE,
    RETIRED_INDEXES,
    REVIEW_INDEXES,
    REVIEWS_VALIDATOR,
    IndexAction,
    index_plan,
    role_privileges,
)
from streamctl.steps import ConfigStep

# Server error codes (MongoDB's error code list): 18 AuthenticationFailed (a wrong password and an
# unknown user answer alike), 13 Unauthorized (e.g. createUser without credentials once the localhost
# exception has closed because a user exists).
AUTH_FAILED, UNAUTHORIZED = 18, 13

ROTATE_HINT = ("the root user exists with another password: the official image creates it only on an "
               "empty volume, so a changed mongo_password is never applied by it. Put the previous "
               "value back in secrets.mongo_password (or the state's secrets file) and run `streamctl up` "
               "once: streamctl then remembers the applied password and rotates it (updateUser) on the "
               "next change. Or `streamctl down --volumes` to start over (deletes the reviews)")


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

    # -- root password: auth probe, rotation memory ------------------------------------------------
    def _uri(self, user: str, password: str, auth_db: str) -> str:
        ep = self.ctx.endpoint(self.node.name)
        ca = self.ctx.ca_path() if self.ctx.managed_tls(self.node.name) else None
        return mongo_engine.uri(ep.host, ep.port, user or None, password, auth_db if user else None,
                                timeouts=True, ca_file=ca)

    def _authenticates(self, user: str, password: str, auth_db: str) -> bool:
        """True when the server accepts the credentials; False on AuthenticationFailed; else raises."""
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        client: MongoClient[Any] = MongoClient(self._uri(user, password, auth_db))
        try:
            client[auth_db].command("ping")  # the handshake authenticates before the command runs
            return True
        except OperationFailure as exc:
            if exc.code == AUTH_FAILED:
                return False
            raise
        finally:
            client.close()

    @property
    def _applied_file(self) -> Path:
        return self.ctx.store.root / "mongo-applied.json"

    def _applied_root_password(self) -> str | None:
        try:
            return str(json.loads(self._applied_file.read_text())["root"])
        except (FileNotFoundError, KeyError, ValueError):
            return None

    def _remember_root_password(self, password: str) -> None:
        """Kept (mode 0600) so that a later change of mongo_password can be applied with the old one."""
        write_file(self._applied_file, json.dumps({"root": password}), 0o600)

    def _root_state(self) -> str:
        """'ok' (current password works), 'rotate' (the remembered one does), or 'unknown' (neither:
        no root user yet, or one with a password streamctl never knew)."""
        current = self.ctx.secrets["mongo_password"]
        if self._authenticates(MONGO_ROOT_USER, current, "admin"):
            return "ok"
        old = self._applied_root_password()
        if old and old != current and self._authenticates(MONGO_ROOT_USER, old, "admin"):
            return "rotate"
        return "unknown"

    def _create_root_or_explain(self) -> None:
        """Create the root user through the localhost exception; if users already exist, that is a
        changed password, not a missing user: say so with the way out."""
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        local: MongoClient[Any]
        with MongoClient(self._uri("", "", "admin")) as local:
            try:
                local.admin.command("createUser", MONGO_ROOT_USER, pwd=self.ctx.secrets["mongo_password"],
                                    roles=["root"])
            except OperationFailure as exc:
                if exc.code in (UNAUTHORIZED, AUTH_FAILED):
                    raise BackendError(f"MongoDB on {self.node.name} refused the root password of "
                                       f"{MONGO_ROOT_USER}, and already has users", hint=ROTATE_HINT) from None
                raise

    # -- steps ------------------------------------------------------------------------------------
    def _app_pending(self) -> list[str]:
        with self.ctx.mongo(admin=True) as client:
            db = client[self.database]
            out: list[str] = []
            roles = db.command("rolesInfo", GATEWAY_ROLE, showPrivileges=True)["roles"]
            if not roles or _privileges(roles[0]) != _privileges({"privileges": role_privileges(self.database)}):
                out.append(f"create or update role {GATEWAY_ROLE} (find, insert on {REVIEWS_COLLECTION})")
            users = db.command("usersInfo", MONGO_APP_USER)["users"]
        if not users:
            return [*out, f"create app user {MONGO_APP_USER} (role {GATEWAY_ROLE})"]
        if [(r["role"], r["db"]) for r in users[0].get("roles", [])] != [(GATEWAY_ROLE, self.database)]:
            out.append(f"set the roles of {MONGO_APP_USER} to {GATEWAY_ROLE} only")
        if not self._authenticates(MONGO_APP_USER, self.ctx.secrets["mongo_app_password"], self.database):
            out.append(f"set the password of {MONGO_APP_USER} (mongo_app_password changed)")
        return out

    def users_step(self) -> ConfigStep:
        def pending() -> list[str]:
            state = self._root_state()
            if state == "unknown":
                return [f"create root user {MONGO_ROOT_USER}", f"create role {GATEWAY_ROLE}",
                        f"create app user {MONGO_APP_USER}"]
            if state == "rotate":
                return [f"rotate the password of {MONGO_ROOT_USER} (mongo_password changed)"]
            out = self._app_pending()
            if self._applied_root_password() != self.ctx.secrets["mongo_password"]:
                out.append("remember the applied root password (for a later rotation)")
            return out

        def apply() -> None:
            from pymongo import MongoClient

            state = self._root_state()
            new = self.ctx.secrets["mongo_password"]
            if state == "rotate":
                old = self._applied_root_password() or ""
                client: MongoClient[Any]
                with MongoClient(self._uri(MONGO_ROOT_USER, old, "admin")) as client:
                    client.admin.command("updateUser", MONGO_ROOT_USER, pwd=new)
            elif state == "unknown":
                self._create_root_or_explain()
            self._remember_root_password(new)
            with self.ctx.mongo(admin=True) as admin:
                db = admin[self.database]
                privileges = role_privileges(self.database)
                if db.command("rolesInfo", GATEWAY_ROLE)["roles"]:
                    db.command("updateRole", GATEWAY_ROLE, privileges=privileges, roles=[])
                else:
                    db.command("createRole", GATEWAY_ROLE, privileges=privileges, roles=[])
                pw = self.ctx.secrets["mongo_app_password"]
                roles = [{"role": GATEWAY_ROLE, "db": self.database}]
                if db.command("usersInfo", MONGO_APP_USER)["users"]:
                    db.command("updateUser", MONGO_APP_USER, pwd=pw, roles=roles)
                else:
                    db.command("createUser", MONGO_APP_USER, pwd=pw, roles=roles)

        return ConfigStep(self.node.name, "mongo users", pending, apply, after=())

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
                plan = index_plan(db[REVIEWS_COLLECTION].index_information())
                return out + [a.describe() for a in plan if a.kind != "adopt"]

        def apply() -> None:
            with self.ctx.mongo(admin=True) as client:
                db = client[self.database]
                if REVIEWS_COLLECTION not in db.list_collection_names():
                    db.create_collection(REVIEWS_COLLECTION, validator=REVIEWS_VALIDATOR,
                                         validationLevel="strict", validationAction="error")
                else:
                    db.command("collMod", REVIEWS_COLLECTION, validator=REVIEWS_VALIDATOR,
                               validationLevel="strict", validationAction="error")
                collection = db[REVIEWS_COLLECTION]
                for action in index_plan(collection.index_information()):
                    _apply_index(collection, action)

        return ConfigStep(self.node.name, "reviews collection", pending, apply, after=())


def _apply_index(collection: Any, action: IndexAction) -> None:
    if action.kind == "drop":
        collection.drop_index(action.name)
    elif action.kind == "create":
        collection.create_index(list(action.keys), name=action.name)
    # "adopt": the server already holds these keys under another name; nothing to build.


def _privileges(role: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """A role's privileges in a comparable form (resource db/collection, sorted actions)."""
    return sorted((p["resource"].get("db", ""), p["resource"].get("collection", ""), tuple(sorted(p["actions"])))
                  for p in role.get("privileges", []))


__all__ = ["MongoService", "REVIEW_INDEXES", "REVIEWS_VALIDATOR", "RETIRED_INDEXES", "GATEWAY_ROLE"]
