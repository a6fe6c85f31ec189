"""GET /metrics on a real gateway process (beyond loopback, with its token) over a real local Citus cluster,
parsed with prometheus_client's parser; every figure compared with what SQL and Redis say; a stopped node
reads 0 and the scrape still answers; `streamctl metrics` prints the same figures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamctl import names
from streamctl.readiness import Readiness
from tests.support.cluster import LocalCluster, running
from tests.support.gateway import Dataset, gateway_serving, insert_dataset
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.citus]

FAMILIES = ("streamctl_node_up", "streamctl_node_healthy", "streamctl_replication_lag_bytes",
            "streamctl_replication_lag_seconds", "streamctl_citus_shards", "streamctl_citus_shard_bytes",
            "streamctl_citus_skew_ratio", "streamctl_table_rows_estimate", "streamctl_views",
            "streamctl_trending_size", "streamctl_http_requests", "streamctl_http_request_duration_seconds")


class Served:
    def __init__(self, c: LocalCluster, data: Dataset, base: str, token: str) -> None:
        self.c, self.data, self.base, self.token = c, data, base, token
        self.client = httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"})

    def scrape(self) -> dict[str, Any]:
        """Family name -> [(sample name, labels, value)]."""
        answer = self.client.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
                for f in text_string_to_metric_families(answer.text)}

    def fresh(self, after: float) -> dict[str, Any]:
        """A scrape whose snapshot was collected after `after` (a readiness wait on the collector)."""
        found: dict[str, Any] = {}

        def probe() -> bool:
            nonlocal found
            found = self.scrape()
            stamp = found.get("streamctl_collect_timestamp_seconds", [])
            return bool(stamp) and stamp[0][2] > after

        Readiness("a metrics collection", probe, timeout=60, interval=0.2).wait()
        return found


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with running(cluster="metrics", citus=True, workers=2, replicas=1,
                 gateway={"port": free_port(), "metrics_interval": 0.5}) as c:
        data = insert_dataset(c)
        with gateway_serving(c, "0.0.0.0", "--workers", "2") as base:
            token = (c.ctx.store.root / "gateway-token").read_text().strip()
            yield Served(c, data, base, token)


def value(samples: list[tuple[str, dict[str, str], float]], name: str | None = None, **labels: str) -> float:
    hits = [v for n, lab, v in samples if (name is None or n == name) and all(lab.get(k) == x
                                                                              for k, x in labels.items())]
    assert len(hits) == 1, (name, labels, samples)
    return hits[0]


def test_a_scrape_without_the_token_is_401(served: Served) -> None:
    assert httpx.get(f"{served.base}/metrics", timeout=10).status_code == 401


def test_every_family_matches_sql_and_redis(served: Served) -> None:
    ctx, t = served.c.ctx, served.c.topology
    found = served.fresh(time.time())
    missing = [f for f in FAMILIES if f not in found]
    assert not missing
    for section in ("nodes", "replication", "citus", "redis"):  # as the gateway's least-privilege role
        assert value(found["streamctl_collect_ok"], section=section) == 1, section
    for node in t.nodes():
        assert value(found["streamctl_node_up"], node=node.name) == 1.0
        assert value(found["streamctl_node_healthy"], node=node.name) == 1.0
    # Citus: shards and bytes per node and table, as citus_shards says
    with ctx.pg_connect(t.metadata.coordinator.name, t.metadata.database) as conn:
        expected = conn.execute("SELECT table_name::text, nodename, nodeport, count(*), sum(shard_size) "
                                "FROM citus_shards GROUP BY 1, 2, 3").fetchall()
    by_port = {ep.port: name for name, ep in ctx.endpoints().items()}
    assert expected
    for table, _host, port, count, size in expected:
        node = by_port[port]
        assert value(found["streamctl_citus_shards"], node=node, table=table) == count
        assert value(found["streamctl_citus_shard_bytes"], node=node, table=table) == pytest.approx(size, rel=0.5)
    shard_bytes = {(lab["table"], lab["node"]): v for _n, lab, v in found["streamctl_citus_shard_bytes"]}
    for table in names.DISTRIBUTED_TABLES:
        per_node = [v for (tab, _node), v in shard_bytes.items() if tab == table]
        ratio = value(found["streamctl_citus_skew_ratio"], table=table)
        assert ratio == pytest.approx(max(per_node) / (sum(per_node) / len(per_node)), rel=0.5)
        assert ratio >= 1.0
    # the analytics row estimates exist for every replicated table
    for table in t.analytics.tables:
        value(found["streamctl_table_rows_estimate"], node="analytics-primary", table=table)


def test_replication_lag_matches_the_slot(served: Served) -> None:
    ctx, t = served.c.ctx, served.c.topology
    replica = t.analytics.replicas[0].name
    sub = names.subscription_name(replica)

    def caught_up() -> bool:
        with ctx.pg_connect(t.analytics.primary.name, t.analytics.database) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
                               "FROM pg_replication_slots WHERE slot_name = %s", (sub,)).fetchone()
        return row is not None and row[0] == 0

    Readiness("the replica caught up", caught_up, timeout=60, interval=0.2).wait()
    # Nothing writes now: the next collection must read what the slot says, 0 bytes behind.
    found = served.fresh(time.time())
    assert value(found["streamctl_replication_lag_bytes"], replica=replica, subscription=sub) == 0
    assert 0 <= value(found["streamctl_replication_lag_seconds"], replica=replica, subscription=sub) < 60
    assert value(found["streamctl_replication_slot_active"], replica=replica, subscription=sub) == 1


def test_views_counter_after_n_increments(served: Served) -> None:
    before = served.fresh(time.time())
    start = value(before["streamctl_views"], "streamctl_views_total")
    title = next(iter(served.data.content))
    for _ in range(7):
        assert served.client.post(f"/api/v1/content/{title}/views/increment").status_code == 200
    after = served.fresh(time.time())
    assert value(after["streamctl_views"], "streamctl_views_total") == start + 7
    redis = served.c.ctx.redis()
    assert int(redis.get(names.VIEWS_TOTAL_KEY)) == start + 7
    assert value(after["streamctl_trending_size"]) == redis.zcard(names.trending_key(
        time.strftime("%Y-%m-%d", time.gmtime())))
    # the gateway's own requests: counted per route template and status, over both workers
    route = "/api/v1/content/{id}/views/increment"
    count = value(after["streamctl_http_request_duration_seconds"], "streamctl_http_request_duration_seconds_count",
                  route=route, method="POST", status="200")
    assert count >= 7
    assert value(after["streamctl_http_requests"], "streamctl_http_requests_total", route=route, method="POST",
                 status="200") == count


def test_streamctl_metrics_prints_the_same_figures(served: Served) -> None:
    cli = served.c.cli
    done = cli.run("metrics", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == {}
    assert {n["node"] for n in report["nodes"] if n["up"]} == {n.name for n in served.c.topology.nodes()}
    scraped = served.fresh(time.time())
    for s in report["shards"]:
        assert value(scraped["streamctl_citus_shards"], node=s["node"], table=s["table"]) == s["shards"]
    table = cli.run("metrics", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "streamctl_node_up" in table.stdout and "node=coordinator" in table.stdout
    text = cli.run("metrics", "--prometheus")
    assert text.returncode == 0
    assert {f.name for f in text_string_to_metric_families(text.stdout)} >= {
        "streamctl_node_up", "streamctl_citus_skew_ratio", "streamctl_replication_lag_bytes"}


def test_a_stopped_node_reads_0_and_the_scrape_still_answers(served: Served) -> None:
    c = served.c
    worker = next(n for n in c.topology.nodes() if n.role.value == "worker")
    replica = c.topology.node(c.topology.analytics.replicas[0].name)
    assert replica is not None
    c.backend.stop(worker)
    c.backend.stop(replica)
    try:
        found = served.fresh(time.time())  # a collection that started once both were down
        assert value(found["streamctl_node_up"], node=worker.name) == 0
        assert value(found["streamctl_node_up"], node=replica.name) == 0
        assert value(found["streamctl_node_healthy"], node=replica.name) == 0
        assert value(found["streamctl_node_up"], node=c.topology.metadata.coordinator.name) == 1
        assert value(found["streamctl_node_up"], node=c.topology.redis.name) == 1
        assert value(found["streamctl_collect_ok"], section="nodes") == 1
        ok = served.client.get("/health")
        assert ok.status_code == 503  # the dashboard's health data marks the store behind the node
        nodes: dict[str, Any] = {}

        def marked() -> bool:  # each uvicorn worker has its own collector: wait for the one that answers
            nodes.update({n["node"]: n for n in served.client.get("/api/v1/ops/history").json()["nodes"]})
            return not nodes[worker.name]["up"] and not nodes[replica.name]["up"]

        Readiness("the dashboard's nodes table marks both down", marked, timeout=60, interval=0.2).wait()
        assert nodes[c.topology.metadata.coordinator.name]["up"]
    finally:
        c.up()


def test_one_collector_serves_every_worker(served: Served) -> None:
    """Two uvicorn workers, one background collector: the histories every worker answers with come from
    one series (one point per interval), not one series per worker (two points per interval)."""
    headers = {"Authorization": f"Bearer {served.token}"}
    time.sleep(5)  # a few seconds of history, whichever worker collected before

    def history(_: int) -> list[float]:
        with httpx.Client(timeout=10) as client:  # a new connection each time
            reply = client.get(f"{served.base}/api/v1/ops/history", headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["points"], reply.json()
        return [p["t"] for p in reply.json()["points"]]

    with ThreadPoolExecutor(max_workers=8) as pool:  # at once, so that both workers answer some
        answers = list(pool.map(history, range(64)))
    # One series: every answer is a stretch of it with nothing of it missing in between. Two series (one
    # collector per worker, stamps interleaved): a worker's answer lacks the other's points in its span.
    series = sorted({t for answer in answers for t in answer})
    for answer in answers:
        stretch = [t for t in series if answer[0] <= t <= answer[-1]]
        assert answer == stretch, (answer, stretch)
