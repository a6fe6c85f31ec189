"""MongoDB (reviews collection with its validator and indexes) and Redis (trending keys once seeded)."""

from __future__ import annotations

from typing import Any

from streamctl import names
from streamctl.config.model import Role, Topology
from streamctl.context import MONGO_APP_USER, ClusterContext
from streamctl.services.mongo_schema import (
    GATEWAY_ROLE,
    REVIEW_INDEXES,
    REVIEWS_VALIDATOR,
    normalise_keys,
    role_privileges,
)
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed, skipped

MONGO = "mongo.reviews"
REDIS = "redis.trending"


def mongo_skip(t: Topology) -> str | None:
    return None if t.mongo.enabled else "mongo.enabled is false"


def redis_skip(t: Topology) -> str | None:
    if not t.redis.enabled:
        return "redis.enabled is false"
    # The trending sets are derived from the watch history, which lives in analytics: `seed` writes none
    # without it, so their absence proves nothing.
    return None if t.analytics.enabled else "no watch history to derive trending from (analytics.enabled is false)"


def check_mongo(ctx: ClusterContext) -> list[CheckResult]:
    t = ctx.topology

    def body() -> Verdict:
        client = ctx.mongo(admin=True)
        try:
            db = client[t.mongo.database]
            info = next(iter(db.list_collections(filter={"name": names.REVIEWS_COLLECTION})), None)
            if info is None:
                return failed(f"collection {names.REVIEWS_COLLECTION} does not exist in {t.mongo.database}")
            validator = info.get("options", {}).get("validator")
            keys = {normalise_keys(i["key"]) for n, i in db[names.REVIEWS_COLLECTION].index_information().items()
                    if n != "_id_"}
            documents = db[names.REVIEWS_COLLECTION].estimated_document_count()
            users = db.command("usersInfo", MONGO_APP_USER)["users"]
            roles = db.command("rolesInfo", GATEWAY_ROLE, showPrivileges=True)["roles"]
        finally:
            client.close()
        data = {"validator": validator == REVIEWS_VALIDATOR, "indexes": sorted(map(str, keys)),
                "documents": documents, "app_user": bool(users)}
        return _mongo_verdict(t.mongo.database, validator, keys, users, roles, data)

    return [guarded(MONGO, t.mongo.name, body)]


def _mongo_verdict(database: str, validator: object, keys: set[tuple[tuple[str, int], ...]],
                   users: list[dict[str, Any]], roles: list[dict[str, Any]], data: dict[str, Any]) -> Verdict:
    """Compare what the server holds with what `up` applies: validator, index keys, user and role."""
    coll = names.REVIEWS_COLLECTION
    if not validator:
        return failed(f"{coll} has no validator", **data)
    if validator != REVIEWS_VALIDATOR:
        return failed(f"{coll} has a stale validator (run `streamctl up` to update it)", **data)
    missing = sorted(name for name, wanted in REVIEW_INDEXES.items() if wanted not in keys)
    if missing:
        return failed(f"{coll} lacks indexes with the keys of {', '.join(missing)}", **data)
    if not users:
        return failed(f"the application user {MONGO_APP_USER} does not exist in {database}", **data)
    granted = [(r.get("role"), r.get("db")) for r in users[0].get("roles", [])]
    if granted != [(GATEWAY_ROLE, database)]:
        return failed(f"{MONGO_APP_USER} has roles {granted}, not only {GATEWAY_ROLE}", **data)
    wanted = role_privileges(database)
    have = roles[0].get("privileges") if roles else None
    if not have or [(p["resource"], sorted(p["actions"])) for p in have] != \
            [(p["resource"], p["actions"]) for p in wanted]:
        return failed(f"role {GATEWAY_ROLE} is missing or grants other privileges than {wanted}", **data)
    return passed(f"validator current; index keys present; {MONGO_APP_USER} has {GATEWAY_ROLE}; "
                  f"{data['documents']} documents", **data)


def _seeded(ctx: ClusterContext) -> bool | None:
    """Seeded means the catalogue or the users table has rows (the seeder's own definition); None: unknown."""
    probes = [(n.name, ctx.topology.metadata.database, "content_metadata")
              for n in ctx.topology.nodes_by_role(Role.COORDINATOR)]
    probes += [(n.name, ctx.topology.analytics.database, "users")
               for n in ctx.topology.nodes_by_role(Role.ANALYTICS_PRIMARY)]
    answer: bool | None = None
    for node, db, table in probes:
        try:
            with ctx.pg_connect(node, db) as conn:
                row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        except Exception:  # noqa: BLE001 - unknown, not fatal: the Redis side still decides
            continue
        if row and row[0]:
            return True
        answer = False
    return answer


def check_redis(ctx: ClusterContext) -> list[CheckResult]:
    t = ctx.topology

    def body() -> Verdict:
        client = ctx.redis()
        try:
            found = client.scan_iter(match=names.trending_key("*"), count=1000)
            keys = [k for _, k in zip(range(1000), found, strict=False)]
            latest = max(keys) if keys else None
            members = int(client.zcard(latest)) if latest else 0
        finally:
            client.close()
        if keys:
            return passed(f"{len(keys)}{'+' if len(keys) == 1000 else ''} trending keys; latest {latest} has "
                          f"{members} titles", keys=len(keys), latest=latest, members=members)
        if _seeded(ctx):
            return failed("the platform is seeded but Redis holds no trending:daily:* keys", keys=0)
        return skipped("no trending keys yet: the platform is not seeded (run `streamctl seed`)", keys=0)

    return [guarded(REDIS, t.redis.name, body)]
