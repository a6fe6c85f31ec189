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
