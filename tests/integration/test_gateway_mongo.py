"""Review endpoints against a real mongod (skipped with a reason when MongoDB is not installed)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from streamctl.gateway.app import create_app
from tests.support.cluster import LocalCluster
from tests.support.gateway import Dataset, module_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.mongo]
API = "/api/v1/content"


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[LocalCluster, Dataset]]:
    if shutil.which("mongod") is None:  # a URI alone is not enough: the local backend runs mongod itself
        pytest.skip("the gateway's review tests run a local cluster and need mongod on PATH")
    yield from module_cluster("gwmongo", mongo=True)


@pytest.fixture(scope="module")
def client(platform: tuple[LocalCluster, Dataset]) -> Iterator[TestClient]:
    with TestClient(create_app(platform[0].ctx), raise_server_exceptions=False) as c:
        yield c


def test_post_then_list_reviews_newest_first(client: TestClient, platform: tuple[LocalCluster, Dataset]) -> None:
    data = platform[1]
    cid = list(data.content)[0]
    posted = []
    for n in range(5):
        body = {"user_id": str(data.users[n % 2]), "rating": 1 + n, "comment": f"review {n}",
                "is_spoiler": n == 3}
        resp = client.post(f"{API}/{cid}/reviews", json=body)
        assert resp.status_code == 201, resp.text
        stored = resp.json()
        assert {k: stored[k] for k in body} == body and stored["content_id"] == str(cid)
        posted.append(stored)
    seen, cursor = [], None
    while True:
        page = client.get(f"{API}/{cid}/reviews", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = sorted(posted, key=lambda r: (datetime.fromisoformat(r["created_at"]), r["review_id"]), reverse=True)
    assert [r["review_id"] for r in seen] == [r["review_id"] for r in expected]
    details = client.get(f"{API}/{cid}/details").json()
    assert details["reviews"] == {"count": 5, "average_rating": 3.0} and details["unavailable"] == []


def test_review_errors(client: TestClient, platform: tuple[LocalCluster, Dataset]) -> None:
    data = platform[1]
    cid = list(data.content)[1]
    ok = {"user_id": str(data.users[0]), "rating": 5}
    assert client.post(f"{API}/{uuid.uuid4()}/reviews", json=ok).status_code == 404
    assert client.post(f"{API}/{cid}/reviews", json={**ok, "user_id": str(uuid.uuid4())}).status_code == 404
    assert client.get(f"{API}/{uuid.uuid4()}/reviews").status_code == 404
    assert client.get(f"{API}/{cid}/reviews", params={"cursor": "abc"}).status_code == 422
    empty = client.get(f"{API}/{cid}/reviews").json()
    assert empty == {"items": [], "next_cursor": None}
