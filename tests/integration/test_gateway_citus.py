"""The gateway's whole endpoint suite again, over a Citus cluster (distributed catalogue, FDW joins with
distributed tables, shard ops). Runs when a Citus-enabled PostgreSQL is available."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LocalCluster
from tests.integration import test_gateway as base
from tests.integration.gateway_fixtures import Dataset, module_cluster

pytestmark = [pytest.mark.citus, pytest.mark.redis]

# Every test of the plain suite, collected again here with the fixtures below (but the one asserting the
# plain cluster's empty shard view, replaced by the Citus one at the end).
globals().update({name: getattr(base, name) for name in dir(base)
                  if name.startswith("test_") and name != "test_ops_views"})
client = base.client
data = base.data
redis = base.redis


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[LocalCluster, Dataset]]:
    yield from module_cluster("gwcitus", citus=True, workers=2)


def test_ops_shards_lists_every_worker(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/ops/shards")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["citus"] is True
    workers = {w["node"]: w for w in body["workers"]}
    assert workers["worker-1"]["distributed"] + workers["worker-2"]["distributed"] == 4 * 8  # 4 tables x 8 shards
    assert workers["coordinator"]["distributed"] == 0


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
