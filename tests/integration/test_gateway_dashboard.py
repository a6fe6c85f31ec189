"""The dashboard in headless Chromium (Debian's `chromium`): the numbers it shows match the API."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.dashboard import Cells, dump_dom
from tests.support.gateway import Dataset, module_cluster, serve, wait_for_replicas

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.chromium]

DURATION = r"\d+(\.\d+)? (µs|ms|s|min|h)"  # how the dashboard writes a duration for people


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Dataset, LocalCluster]]:
    from streamctl.gateway.app import create_app

    platforms = module_cluster("gwdash", gateway={"metrics_interval": 0.5})
    local, data = next(platforms)
    try:
        with serve(create_app(local.ctx)) as url:
            yield url, data, local
    finally:
        platforms.close()


def test_dashboard_numbers_match_the_api(served: tuple[str, Dataset, LocalCluster]) -> None:
    url, data, _ = served
    ids = list(data.content)
    with httpx.Client(base_url=url) as api:
        for cid, views in ((ids[0], 3), (ids[1], 5), (ids[2], 1)):
            for _ in range(views):
                assert api.post(f"/api/v1/content/{cid}/views/increment").status_code == 200
        page = Cells()
        page.feed(dump_dom(url + "/"))
        trending: dict[str, Any] = api.get("/api/v1/content/trending/daily", params={"limit": 10}).json()
        health: dict[str, Any] = api.get("/health").json()
        replication: dict[str, Any] = api.get("/api/v1/ops/replication").json()
        shards: dict[str, Any] = api.get("/api/v1/ops/shards").json()
        assert api.get("/api/v1/ops/ha").json() == {"enabled": False, "groups": []}

    assert int(page.body.get("data-refreshes", "0")) >= 1, "the dashboard never finished a refresh"
    assert "hidden" in page.ids["ha-section"]  # without ha: no members section
    shown = [(key, int(float(cells["score"])), cells["title"]) for key, cells in page.tables["trending"]]
    assert shown == [(i["content_id"], int(i["score"]), i["title"]) for i in trending["items"]]
    assert [s for _, s, _ in shown] == [5, 3, 1]

    states = {key: cells["state"] for key, cells in page.tables["health"]}
    assert states == {s["store"]: (s["detail"] if s["enabled"] else "disabled") for s in health["stores"]}

    repl = {key: cells for key, cells in page.tables["replication"]}
    assert set(repl) == {r["replica"] for r in replication["replicas"]}
    for r in replication["replicas"]:
        assert repl[r["replica"]]["state"] == r["state"]
        assert re.fullmatch(r"\d+(\.\d)? (B|kB|MB|GB)", repl[r["replica"]]["lag-bytes"])
        assert re.fullmatch(DURATION, repl[r["replica"]]["lag-seconds"]), repl[r["replica"]]["lag-seconds"]

    assert [(k, int(c["distributed"]), int(c["reference"])) for k, c in page.tables["shards"]] == \
        [(w["node"], w["distributed"], w["reference"]) for w in shards["workers"]]


def test_charts_hold_the_last_minutes_after_a_write_load(served: tuple[str, Dataset, LocalCluster]) -> None:
    url, data, c = served
    t = c.topology
    ids = list(data.content)
    twins = [uuid.uuid4(), uuid.uuid4()]  # two titles with one name: the trending rows must tell them apart
    with c.ctx.pg_connect(t.metadata.coordinator.name, t.metadata.database) as conn:
        for cid in twins:
            conn.execute("INSERT INTO content_metadata (content_id, title, content_type, release_date, "
                         "duration_minutes, rating, summary) VALUES (%s, 'Twins', 'movie', '2001-01-01', 90, 7, "
                         "'twice')", (cid,))
    with httpx.Client(base_url=url) as api:
        for cid in twins:
            assert api.post(f"/api/v1/content/{cid}/views/increment").status_code == 200

        def points() -> list[dict[str, Any]]:
            answer = api.get("/api/v1/ops/history")
            assert answer.status_code == 200
            return list(answer.json()["points"])

        # A short write load over several collections: views counted, users written on the primary.
        for round_ in range(4):
            seen = len(points())
            for k in range(5):
                assert api.post(f"/api/v1/content/{ids[k % len(ids)]}/views/increment").status_code == 200
            with c.ctx.pg_connect(t.analytics.primary.name, t.analytics.database) as conn:
                for _ in range(10):
                    uid = uuid.uuid4()
                    conn.execute("INSERT INTO users (user_id, username, email) VALUES (%s, %s, %s)",
                                 (uid, f"load{round_}-{uid.hex[:8]}", f"{uid.hex[:12]}@example.test"))
            deadline = time.monotonic() + 30
            while len(points()) < seen + 2:  # readiness: two more collections saw this round
                assert time.monotonic() < deadline, "the collector made no new point"
                time.sleep(0.1)
        history = api.get("/api/v1/ops/history").json()
        assert any((p["views_per_second"] or 0) > 0 for p in history["points"])
        wait_for_replicas(c, len(data.users) + 40)
        page = Cells()
        page.feed(dump_dom(url + "/"))

    assert int(page.body.get("data-refreshes", "0")) >= 1
    for chart in ("chart-lag", "chart-views", "chart-requests"):
        assert int(page.ids[chart]["data-points"]) >= 4, (chart, page.ids[chart])
    assert "hidden" in page.ids["shards-section"]  # Citus is off in this cluster: no empty shard panel
    assert "hidden" in page.ids["chart-shards-box"]
    nodes = {key: cells for key, cells in page.tables["nodes"]}
    assert set(nodes) == {n["node"] for n in history["nodes"]}
    assert all(cells["state"] == "up" for cells in nodes.values())
    for _key, cells in page.tables["replication"]:
        assert re.fullmatch(DURATION, cells["lag-seconds"]), cells  # e.g. "0 s", "1.5 s", never 1.486936
    shown = {key: cells["title"] for key, cells in page.tables["trending"]}
    assert {shown[str(cid)] for cid in twins} == {f"Twins ({str(cid)[:8]})" for cid in twins}
