"""End to end through the CLI on a real Docker engine with Citus: the default topology.yaml, MongoDB off.

The coordinator and workers run the Citus test image (images/build-citus.sh, from the Citus build beside
the checkout), the analytics nodes and Redis the plain test image; ports are free ones and the cluster
name a unique one. Everything else is the default platform: up, seed, verify, shards, scale out and back
with the row counts unchanged, the gateway's endpoints over it, and `down --volumes` leaving nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.support.cli import Cli
from tests.support.docker import cli_for, cluster_resources, example_topology
from tests.support.images import ensure_citus_image

pytestmark = [pytest.mark.docker, pytest.mark.citus]

CITUS_TABLES = ("content_metadata", "content_genres", "content_cast_crew", "trending_daily", "genres", "cast_crew")


@pytest.fixture
def cli() -> Iterator[Cli]:
    with cli_for(example_topology("topology.yaml", citus_image=ensure_citus_image()), backend="docker") as c:
        yield c


def row_counts(cli: Cli) -> dict[str, int]:
    union = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in CITUS_TABLES)
    rows = [line.split("|") for line in cli.sql("coordinator", union).splitlines()]
    return {name: int(n) for name, n in rows}


def workers_registered(cli: Cli) -> list[str]:
    out = cli.sql("coordinator", "SELECT nodename FROM pg_dist_node WHERE groupid <> 0 AND isactive ORDER BY nodename")
    return out.splitlines()


def verify_passes(cli: Cli) -> dict[str, Any]:
    proc = cli.run("verify", "--json")
    report: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == 0, f"verify exit {proc.returncode}:\n{json.dumps(report, indent=1)[-6000:]}"
    return report


class Gateway:
    """`streamctl gateway` as a real process on the topology's gateway port."""

    def __init__(self, cli: Cli) -> None:
        self.port = int(cli.data["gateway"]["port"])
        self.proc = cli.start("gateway", "--port", str(self.port), stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:  # readiness: the first answer from /health, or the process's death
            assert self.proc.poll() is None, f"gateway exited:\n{self.proc.stdout.read() if self.proc.stdout else ''}"
            try:
                if self.http.get("/health").status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not answer within 60 s"
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def check_gateway(cli: Cli) -> None:
    gw = Gateway(cli)
    try:
        health = gw.http.get("/health")
        assert health.status_code == 200, health.text
        ids = gw.http.get("/api/v1/content/ids", params={"limit": 5})
        assert ids.status_code == 200, ids.text
        content_id = ids.json()["items"][0]
        title = cli.sql("coordinator", f"SELECT title FROM content_metadata WHERE content_id = '{content_id}'")
        one = gw.http.get(f"/api/v1/content/{content_id}")
        assert one.status_code == 200 and one.json()["title"] == title, one.text
        details = gw.http.get(f"/api/v1/content/{content_id}/details")
        assert details.status_code == 200, details.text
        assert gw.http.post(f"/api/v1/content/{content_id}/views/increment").status_code == 200
        assert gw.http.get("/api/v1/content/trending/daily").status_code == 200

        users = gw.http.get("/api/v1/content/users/ids", params={"limit": 3})
        assert users.status_code == 200, users.text
        # the user with the most history, found on the coordinator through the FDW (a join with Citus)
        user, watched = cli.sql("coordinator", "SELECT user_id, count(*) FROM analytics.user_watch_history h JOIN "
                                "content_metadata c USING (content_id) GROUP BY user_id ORDER BY 2 DESC, 1 "
                                "LIMIT 1").split("|")
        history = gw.http.get(f"/api/v1/content/users/{user}/watch-history", params={"limit": 100})
        assert history.status_code == 200, history.text
        items = history.json()["items"]
        assert len(items) == min(int(watched), 100) and all(i["title"] for i in items)

        shards = gw.http.get("/api/v1/ops/shards").json()
        assert shards["citus"] is True
        placed = {w["node"]: w["distributed"] for w in shards["workers"]}
        assert placed["worker-1"] > 0 and placed["worker-2"] > 0
        assert placed["worker-1"] + placed["worker-2"] == 4 * 32  # 4 colocated tables x 32 shards
    finally:
        gw.close()


def test_default_topology_with_citus_on_docker(cli: Cli) -> None:
    nodes = ["coordinator", "worker-1", "worker-2", "analytics-primary", "analytics-replica-1", "redis"]
    cli.ok("up")
    status = json.loads(cli.ok("status", "--json").stdout)["nodes"]
    assert [(s["name"], s["backend"], s["healthy"]) for s in status] == [(n, "docker", True) for n in nodes]
    # workers registered by their network names, and the image's Citus is the one loaded
    assert workers_registered(cli) == ["worker-1", "worker-2"]
    assert cli.sql("coordinator", "SELECT citus_version()").startswith("Citus ")

    cli.ok("seed", "--scale", "0.05")
    report = verify_passes(cli)
    checks = {r["check"] for r in report["checks"]}
    assert {"citus.workers", "citus.distribution", "citus.skew"} <= checks

    shards = json.loads(cli.ok("shards", "--json").stdout)
    assert "content_metadata" in json.dumps(shards) and "worker-2" in json.dumps(shards)

    before = row_counts(cli)
    assert before["content_metadata"] > 0 and before["content_genres"] > 0

    cli.ok("scale", "--workers", "3")
    assert workers_registered(cli) == ["worker-1", "worker-2", "worker-3"]
    on_new = cli.sql("coordinator", "SELECT count(*) FROM citus_shards WHERE nodename = 'worker-3'")
    assert int(on_new) > 0, "the rebalance moved no shard to the new worker"
    assert row_counts(cli) == before
    assert yaml.safe_load(cli.path.read_text())["metadata"]["workers"]["count"] == 3

    cli.ok("scale", "--workers", "2")
    assert workers_registered(cli) == ["worker-1", "worker-2"]
    assert row_counts(cli) == before
    assert f"{cli.cluster}-worker-3" not in cluster_resources(cli.cluster)["containers"]
    verify_passes(cli)

    check_gateway(cli)

    cli.ok("down", "--volumes", "--yes")
    assert cluster_resources(cli.cluster) == {"containers": [], "volumes": [], "networks": []}
    assert not (cli.path.parent / ".streamctl" / cli.cluster).exists()
