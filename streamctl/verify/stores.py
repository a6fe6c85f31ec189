"""MongoDB (reviews collection with its validator and indexes) and Redis (trending keys once seeded)."""

from __future__ import annotations

from streamctl import names
from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.services.mongo import REVIEW_INDEXES
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed, skipped

MONGO = "mongo.reviews"
REDIS = "redis.trending"


def mongo_skip(t: Topology) -> str | None:
    return None if t.mongo.enabled else "mongo.enabled is false"


def redis_skip(t: Topology) -> str | None:
    return None if t.redis.enabled else "redis.enabled is false"


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
            indexes = sorted(k for k in db[names.REVIEWS_COLLECTION].index_information() if k != "_id_")
            documents = db[names.REVIEWS_COLLECTION].estimated_document_count()
        finally:
            client.close()
        data = {"validator": bool(validator), "indexes": indexes, "documents": documents}
        if not validator:
            return failed(f"{names.REVIEWS_COLLECTION} has no validator", **data)
        missing = sorted(set(REVIEW_INDEXES) - set(indexes))
        if missing:
            return failed(f"{names.REVIEWS_COLLECTION} lacks indexes {', '.join(missing)}", **data)
        return passed(f"validator present; indexes {', '.join(indexes)}; {documents} documents", **data)

    return [guarded(MONGO, t.mongo.name, body)]


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
