"""The gateway against a real local cluster (PostgreSQL coordinator, analytics primary + replica, FDW,
Redis): every endpoint's success and error paths, disabled and unreachable stores, security limits. Every
test runs twice: over plain PostgreSQL and over Citus (distributed catalogue, FDW joins with distributed
tables, shard ops; where a Citus-enabled PostgreSQL is available), but for the shard views, which differ."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from streamctl import names
from streamctl.config.model import AnalyticsSpec, FdwSpec, RedisSpec
from streamctl.context import ClusterContext
from streamctl.gateway import catalogue
from streamctl.gateway.app import create_app
from streamctl.gateway.routers.dashboard import STATIC
from streamctl.state import StateStore
from tests.support.cluster import LocalCluster
from tests.support.gateway import Dataset, module_cluster
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
API = "/api/v1/content"
PLAIN = pytest.param("plain")
CITUS = pytest.param("citus", marks=pytest.mark.citus)


@pytest.fixture(scope="module", params=[PLAIN, CITUS])
def platform(request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, Dataset]]:
    if request.param == "citus":
        yield from module_cluster("gwcitus", citus=True, workers=2)
    else:
        yield from module_cluster("gw")


@pytest.fixture(scope="module")
def client(platform: tuple[LocalCluster, Dataset]) -> Iterator[TestClient]:
    with TestClient(create_app(platform[0].ctx), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def data(platform: tuple[LocalCluster, Dataset]) -> Dataset:
    return platform[1]


@pytest.fixture
def redis(platform: tuple[LocalCluster, Dataset]) -> Any:
    r = platform[0].ctx.redis()
    yield r
    r.close()


def _err(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    return body


# -- health, documents, pages --------------------------------------------------------------------------
def test_health_reports_each_store(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    stores = {s["store"]: s for s in resp.json()["stores"]}
    assert resp.json()["status"] == "ok"
    for name in ("metadata", "analytics", "fdw", "redis"):
        assert stores[name]["ok"] and stores[name]["detail"] == "ok", stores[name]
    assert stores["analytics"]["node"] == "analytics-replica-1"  # replica_reads defaults to true
    assert stores["mongo"] == {"store": "mongo", "enabled": False, "ok": False, "node": None,
                               "latency_ms": None, "detail": "disabled"}


def test_openapi_docs_and_dashboard_are_served_without_external_assets(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/content/{id}", "/api/v1/content/ids", "/api/v1/content/users/{userId}/watch-history",
            "/api/v1/content/{id}/views/increment", "/health"} <= set(spec["paths"])
    for page in ("/", "/api-docs"):
        resp = client.get(page)
        assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
        assert "default-src 'self'" in resp.headers["content-security-policy"]
    for asset in STATIC.iterdir():
        text = asset.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), asset.name
        assert client.get(f"/static/{asset.name}").status_code == 200


# -- content ids and users ids (keyset pagination) ------------------------------------------------------
@pytest.mark.parametrize("path", ["/ids", "/users/ids"])
def test_ids_paginate_in_order(client: TestClient, data: Dataset, path: str) -> None:
    expected = sorted(data.content if path == "/ids" else data.users)
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        resp = client.get(API + path, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200
        page = resp.json()
        assert len(page["items"]) <= 2
        seen += [uuid.UUID(i) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"cursor": "not-a-uuid"}, {"cursor": "0"},
                                    {"cursor": "' OR 1=1 --"}, {"limit": "ten"}])
def test_ids_reject_bad_parameters(client: TestClient, params: dict[str, Any]) -> None:
    resp = client.get(API + "/ids", params=params)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] in ("invalid_request", "invalid_cursor")


# -- one title: cache-aside --------------------------------------------------------------------------
def test_content_is_read_through_the_cache(client: TestClient, data: Dataset, redis: Any,
                                           platform: tuple[LocalCluster, Dataset]) -> None:
    cid = next(iter(data.content))
    key = names.content_cache_key(str(cid))
    redis.delete(key)
    resp = client.get(f"{API}/{cid}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["content_id"] == str(cid) and body["title"] == data.content[cid]
    assert body["genres"] == data.genres[cid]
    ttl = redis.ttl(key)
    assert 0 < ttl <= platform[0].ctx.topology.redis.cache_ttl_seconds
    assert json.loads(redis.get(key)) == body
    # Change the row behind the cache: the cached copy is served until the key goes.
    ctx = platform[0].ctx
    with ctx.pg_connect("coordinator", "metadata_db") as conn:
        conn.execute("UPDATE content_metadata SET title = title || ' (edited)' WHERE content_id = %s", (cid,))
    try:
        assert client.get(f"{API}/{cid}").json()["title"] == data.content[cid]
        redis.delete(key)
        assert client.get(f"{API}/{cid}").json()["title"] == data.content[cid] + " (edited)"
    finally:
        with ctx.pg_connect("coordinator", "metadata_db") as conn:
            conn.execute("UPDATE content_metadata SET title = %s WHERE content_id = %s", (data.content[cid], cid))
        redis.delete(key)


def test_unknown_content_is_404_and_not_cached(client: TestClient, redis: Any) -> None:
    cid = uuid.uuid4()
    _err(client.get(f"{API}/{cid}"), 404, "not_found")
    assert redis.exists(names.content_cache_key(str(cid))) == 0


@pytest.mark.parametrize("bad", ["42", "not-a-uuid", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_content_id_is_422(client: TestClient, bad: str) -> None:
    body = _err(client.get(f"{API}/{bad}"), 422, "invalid_request")
    assert body["error"]["details"][0]["loc"] == ["path", "id"]
    for suffix in ("/details", "/reviews", "/views/increment"):
        method = client.post if suffix == "/views/increment" else client.get
        assert method(f"{API}/{bad}{suffix}").status_code == 422


# -- watch history through the FDW ---------------------------------------------------------------------
def test_watch_history_newest_first_with_titles_and_pages(client: TestClient, data: Dataset) -> None:
    uid = data.users[1]
    expected = sorted(data.history[uid], key=lambda r: (r[2], r[0]), reverse=True)
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = client.get(f"{API}/users/{uid}/watch-history", params=params)
        assert resp.status_code == 200, resp.text
        got += resp.json()["items"]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break
    assert [g["history_id"] for g in got] == [r[0] for r in expected]
    for g, r in zip(got, expected, strict=True):
        assert g["content_id"] == str(r[1]) and g["title"] == data.content[r[1]]
        assert datetime.fromisoformat(g["watched_at"]) == r[2]


def test_watch_history_errors(client: TestClient, data: Dataset) -> None:
    _err(client.get(f"{API}/users/{uuid.uuid4()}/watch-history"), 404, "not_found")
    _err(client.get(f"{API}/users/nope/watch-history"), 422, "invalid_request")
    _err(client.get(f"{API}/users/{data.users[0]}/watch-history", params={"cursor": "e30"}), 422,
         "invalid_request")  # outside the declared pattern
    # Any string the pattern allows is a position: far in the future, it pages from the newest entry.
    far = client.get(f"{API}/users/{data.users[0]}/watch-history", params={"cursor": "9999999999999999_1"})
    assert far.status_code == 200 and len(far.json()["items"]) == len(data.history[data.users[0]])
    empty = client.get(f"{API}/users/{data.no_history_user}/watch-history")
    assert empty.status_code == 200 and empty.json()["items"] == [] and empty.json()["next_cursor"] is None


# -- views, trending ------------------------------------------------------------------------------------
def test_increment_counts_views_and_trending_together(client: TestClient, data: Dataset, redis: Any,
                                                      platform: tuple[LocalCluster, Dataset]) -> None:
    ids = list(data.content)
    a, b = ids[1], ids[2]
    for cid in (a, b):
        redis.delete(names.views_key(str(cid)))
    today = datetime.now(UTC).date()
    key = names.trending_key(today)
    redis.zrem(key, str(a), str(b))
    with ThreadPoolExecutor(8) as pool:  # concurrent increments must not lose any
        results = list(pool.map(lambda _: client.post(f"{API}/{a}/views/increment"), range(24)))
    assert all(r.status_code == 200 for r in results)
    assert sorted(r.json()["views"] for r in results) == list(range(1, 25))
    last = client.post(f"{API}/{b}/views/increment").json()
    assert last == {"content_id": str(b), "views": 1, "trending_date": today.isoformat(), "trending_score": 1.0}
    assert int(redis.get(names.views_key(str(a)))) == 24 and redis.zscore(key, str(a)) == 24
    ttl_days = platform[0].ctx.topology.redis.trending_ttl_days
    assert ttl_days * 86400 - 60 < redis.ttl(key) <= ttl_days * 86400

    trending = client.get(f"{API}/trending/daily", params={"limit": 2}).json()
    assert trending["date"] == today.isoformat()
    assert [(i["rank"], i["content_id"], i["title"]) for i in trending["items"]][0] == (1, str(a), data.content[a])
    assert len(trending["items"]) <= 2


def test_increment_unknown_content_is_404_without_side_effects(client: TestClient, redis: Any) -> None:
    cid = uuid.uuid4()
    _err(client.post(f"{API}/{cid}/views/increment"), 404, "not_found")
    assert redis.exists(names.views_key(str(cid))) == 0
    assert redis.zscore(names.trending_key(datetime.now(UTC).date()), str(cid)) is None


def test_trending_for_a_given_date_and_bad_parameters(client: TestClient, data: Dataset, redis: Any) -> None:
    day = date(2020, 2, 29)
    key = names.trending_key(day)
    ids = list(data.content)
    unknown = uuid.uuid4()
    redis.zadd(key, {str(ids[0]): 5, str(ids[3]): 9, str(unknown): 7, "garbage": 100})
    try:
        resp = client.get(f"{API}/trending/daily", params={"date": day.isoformat(), "limit": 10})
        assert resp.status_code == 200
        items = resp.json()["items"]
        assert [(i["content_id"], i["score"]) for i in items] == [(str(ids[3]), 9), (str(unknown), 7),
                                                                  (str(ids[0]), 5)]
        assert [i["title"] for i in items] == [data.content[ids[3]], None, data.content[ids[0]]]
        empty = client.get(f"{API}/trending/daily", params={"date": (day + timedelta(days=1)).isoformat()})
        assert empty.json()["items"] == []
    finally:
        redis.delete(key)
    for params in ({"date": "2020-13-01"}, {"limit": 0}, {"limit": 101}):
        assert client.get(f"{API}/trending/daily", params=params).status_code == 422


# -- details ----------------------------------------------------------------------------------------------
def test_details_combine_the_stores(client: TestClient, data: Dataset, redis: Any) -> None:
    cid = next(iter(data.content))
    redis.set(names.views_key(str(cid)), 41)
    rows = [r for h in data.history.values() for r in h if r[1] == cid]
    viewers = {u for u, h in data.history.items() for r in h if r[1] == cid}
    resp = client.get(f"{API}/{cid}/details")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["content"]["title"] == data.content[cid]
    assert body["views"] == 41
    assert body["watch"]["sessions"] == len(rows) and body["watch"]["viewers"] == len(viewers)
    assert body["watch"]["total_seconds"] == sum(r[3] for r in rows)
    assert body["reviews"] is None and body["unavailable"] == ["mongo"]  # MongoDB is off in this topology
    _err(client.get(f"{API}/{uuid.uuid4()}/details"), 404, "not_found")


# -- reviews: validation happens before any store is touched ------------------------------------------------
@pytest.mark.parametrize("body", [
    {"user_id": {"$gt": ""}, "rating": 5},
    {"user_id": str(uuid.uuid4()), "rating": {"$gt": 0}},
    {"user_id": str(uuid.uuid4()), "rating": "7"},
    {"user_id": str(uuid.uuid4()), "rating": 0},
    {"user_id": str(uuid.uuid4()), "rating": 11},
    {"user_id": str(uuid.uuid4()), "rating": 5, "comment": "x" * 5001},
    {"user_id": str(uuid.uuid4()), "rating": 5, "is_spoiler": "yes"},
    {"user_id": str(uuid.uuid4()), "rating": 5, "$where": "1"},
    {"user_id": "not-a-uuid", "rating": 5},
])
def test_review_body_is_validated(client: TestClient, data: Dataset, body: dict[str, Any]) -> None:
    cid = next(iter(data.content))
    _err(client.post(f"{API}/{cid}/reviews", json=body), 422, "invalid_request")


def test_body_size_limit(client: TestClient, data: Dataset) -> None:
    cid = next(iter(data.content))
    big = {"user_id": str(data.users[0]), "rating": 5, "comment": "x" * 100_000}
    _err(client.post(f"{API}/{cid}/reviews", json=big), 413, "payload_too_large")
    payload = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while the body streams in
        for i in range(0, len(payload), 8192):
            yield payload[i:i + 8192]

    resp = client.post(f"{API}/{cid}/reviews", content=chunks(), headers={"content-type": "application/json"})
    _err(resp, 413, "payload_too_large")


def test_disabled_mongo_answers_503_with_a_clear_message(client: TestClient, data: Dataset) -> None:
    cid = next(iter(data.content))
    for resp in (client.get(f"{API}/{cid}/reviews"),
                 client.post(f"{API}/{cid}/reviews", json={"user_id": str(data.users[0]), "rating": 5})):
        body = _err(resp, 503, "store_unavailable")
        assert "mongo" in body["error"]["message"] and "mongo.enabled" in body["error"]["message"]


# -- other stores disabled or down -------------------------------------------------------------------------
def _variant(platform: tuple[LocalCluster, Dataset], **update: Any) -> ClusterContext:
    ctx = platform[0].ctx
    return ClusterContext(ctx.topology.model_copy(update=update), ctx.store, ctx.topology_path)


def test_redis_disabled_only_disables_its_endpoints(platform: tuple[LocalCluster, Dataset], data: Dataset) -> None:
    ctx = _variant(platform, redis=RedisSpec(enabled=False))
    cid = next(iter(data.content))
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        for resp in (c.get(f"{API}/trending/daily"), c.post(f"{API}/{cid}/views/increment")):
            assert "redis" in _err(resp, 503, "store_unavailable")["error"]["message"]
        assert c.get(f"{API}/{cid}").json()["title"] == data.content[cid]  # no cache: straight from PostgreSQL
        details = c.get(f"{API}/{cid}/details").json()
        assert details["views"] is None and "redis" in details["unavailable"]
        assert c.get("/health").status_code == 200


def test_analytics_disabled_only_disables_its_endpoints(platform: tuple[LocalCluster, Dataset],
                                                        data: Dataset) -> None:
    ctx = _variant(platform, analytics=AnalyticsSpec(enabled=False), fdw=FdwSpec(enabled=False))
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        for path in ("/users/ids", f"/users/{data.users[0]}/watch-history"):
            assert "fdw" in _err(c.get(API + path), 503, "store_unavailable")["error"]["message"]
        assert c.get(API + "/ids").status_code == 200
        replication = c.get("/api/v1/ops/replication").json()
        assert replication == {"enabled": False, "primary": None, "primary_reachable": False, "replicas": []}


def test_unreachable_redis_is_503_not_500(platform: tuple[LocalCluster, Dataset], data: Dataset,
                                         tmp_path: Path) -> None:
    ctx = platform[0].ctx
    copy = tmp_path / "state"
    shutil.copytree(ctx.store.root, copy, ignore=shutil.ignore_patterns("nodes"))
    state = json.loads((copy / "state.json").read_text())
    state["nodes"]["redis"]["port"] = free_port()  # nothing listens there
    (copy / "state.json").write_text(json.dumps(state))
    broken = ClusterContext(ctx.topology, StateStore(copy), ctx.topology_path)
    cid = next(iter(data.content))
    with TestClient(create_app(broken), raise_server_exceptions=False) as c:
        body = _err(c.post(f"{API}/{cid}/views/increment"), 503, "store_unavailable")
        assert "redis" in body["error"]["message"] and "Error" not in body["error"]["message"]
        assert c.get(f"{API}/{cid}").status_code == 200  # the cache is optional for reads
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert {s["store"]: s["detail"] for s in health.json()["stores"]}["redis"] == "unreachable"


def test_internal_errors_never_leak(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret internal detail: password=hunter2")

    monkeypatch.setattr(catalogue, "titles", boom)
    resp = client.get(f"{API}/trending/daily")
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "internal", "message": "internal error"}}


def test_unknown_route_and_method_use_the_error_body(client: TestClient) -> None:
    _err(client.get("/api/v1/nothing-here"), 404, "not_found")
    _err(client.delete(f"{API}/{uuid.uuid4()}"), 405, "method_not_allowed")


# -- ops views --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", [PLAIN], indirect=True)
def test_ops_views(client: TestClient) -> None:
    assert client.get("/api/v1/ops/shards").json() == {"citus": False, "workers": []}
    repl = client.get("/api/v1/ops/replication").json()
    assert repl["enabled"] and repl["primary"] == "analytics-primary" and repl["primary_reachable"]
    [replica] = repl["replicas"]
    assert replica["replica"] == "analytics-replica-1"
    assert replica["subscription"] == names.subscription_name("analytics-replica-1")
    assert replica["state"] == "streaming" and replica["slot_active"] is True
    assert isinstance(replica["lag_bytes"], int) and replica["lag_bytes"] >= 0


def test_the_contract_faults_a_fuzzer_found_are_gone(client: TestClient, data: Dataset) -> None:
    assert client.get(f"{API}/trending/daily", params={"date": "0"}).status_code == 422  # not the epoch
    assert client.get(f"{API}/trending/daily", params={"date": "2024-02-30"}).status_code == 422
    assert client.get(f"{API}/trending/daily", params={"date": "2024-02-29"}).status_code == 200
    cid = list(data.content)[0]
    allowed = client.options(f"{API}/{cid}/reviews")
    assert allowed.status_code == 405 and {"GET", "POST"} <= set(allowed.headers["allow"].split(", "))
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path.startswith("/api/v1/content") or path == "/api/v1/ops/shards":
                assert "503" in op["responses"], (method, path)  # every store-backed operation documents it
    links = doc["paths"]["/api/v1/content/ids"]["get"]["responses"]["200"]["links"]
    assert {lk["operationId"] for lk in links.values()} >= {"getContent", "getContentDetails", "incrementViews"}


@pytest.mark.parametrize("platform", [CITUS], indirect=True)
def test_ops_shards_lists_every_worker(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/ops/shards")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["citus"] is True
    workers = {w["node"]: w for w in body["workers"]}
    assert workers["worker-1"]["distributed"] + workers["worker-2"]["distributed"] == 4 * 8  # 4 tables x 8 shards
    assert workers["coordinator"]["distributed"] == 0


@pytest.mark.parametrize("platform", [CITUS], indirect=True)
def test_ops_rebalance_reports_the_latest_job(client, platform) -> None:  # type: ignore[no-untyped-def]
    from streamctl.shardops.common import MoveOptions
    from streamctl.shardops.move import move_shard
    from streamctl.shardops.rebalance import rebalance

    cluster, _ = platform
    before = client.get("/api/v1/ops/rebalance")
    assert before.status_code == 200, before.text
    assert before.json()["citus"] is True and before.json()["active"] is False
    with cluster.ctx.pg_connect("coordinator") as conn:
        port = cluster.ctx.endpoint("worker-1").internal_port
        shard = conn.execute("SELECT min(shardid) FROM citus_shards WHERE table_name = 'content_metadata'::regclass "
                             "AND nodeport = %s", (port,)).fetchone()[0]
    move_shard(cluster.ctx, shard, "worker-2", MoveOptions("block_writes"))  # unbalance: 3 / 5 groups
    done = rebalance(cluster.ctx, MoveOptions("block_writes"))
    body = client.get("/api/v1/ops/rebalance").json()
    assert body["job_id"] == done.job_id and body["state"] == "finished" and body["active"] is False
    assert body["moves_total"] == body["moves_done"] == done.progress.moves_total >= 1
