"""End to end through the CLI on a real Docker engine, with examples/no-citus.yaml.

The example's images are replaced by the locally built test image (no registry is reachable here), its
ports by free ones and its cluster name by a unique one (tests run side by side); nothing else changes.
The topology says `backend: local`, so every command also proves that `--backend docker` overrides it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.cli import Cli
from tests.support.docker import cli_for, cluster_resources, docker_client, example_topology, remove_cluster_resources
from tests.support.images import ensure_test_image

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cli() -> Iterator[Cli]:
    with cli_for(example_topology(backend="local"), backend="docker") as c:
        yield c


def container_ids(cluster: str) -> dict[str, str]:
    client = docker_client()
    try:
        found = client.containers.list(all=True, filters={"label": f"io.streamctl.cluster={cluster}"})
        return {c.labels["io.streamctl.node"]: c.id for c in found}
    finally:
        client.close()


def test_lifecycle_through_the_cli(cli: Cli) -> None:
    nodes = ["coordinator", "analytics-primary", "analytics-replica-1", "redis"]
    # up, then status: every node healthy, on the Docker backend
    cli.ok("up")
    status = json.loads(cli.ok("status", "--json").stdout)["nodes"]
    assert [(s["name"], s["backend"], s["state"], s["healthy"]) for s in status] == \
        [(n, "docker", "running", True) for n in nodes]
    assert cli.ok("logs", "coordinator", "-n", "5").stdout.strip()

    # data survives down / up; down removes the containers but keeps volumes (and the network)
    cli.sql("coordinator", "CREATE TABLE e2e_kept AS SELECT 'kept' AS v")
    cli.ok("down")
    left = cluster_resources(cli.cluster)
    assert left["containers"] == []
    # one data volume per node, plus the cluster's initialised PostgreSQL template (kept for new nodes)
    assert sorted(v for v in left["volumes"] if "-pgtemplate-" not in v) == \
        sorted(f"{cli.cluster}-{n}-data" for n in nodes)
    assert len(left["volumes"]) == len(nodes) + 1
    assert cli.actions() == dict.fromkeys(nodes, "create")
    assert cli.sql("coordinator", "SELECT v FROM e2e_kept") == "kept"

    # a second up is a no-op
    out = json.loads(cli.ok("up", "--json").stdout)
    assert out["changed"] is False
    assert {n["action"] for n in out["nodes"]} == {"noop"}

    # a killed container is started again by the next up, and only that one
    client = docker_client()
    try:
        client.containers.get(f"{cli.cluster}-analytics-replica-1").kill()
    finally:
        client.close()
    assert cli.actions() == {**dict.fromkeys(nodes, "noop"), "analytics-replica-1": "start"}

    # a changed image: --dry-run shows the recreate and changes nothing; up recreates only that node
    alt = f"{ensure_test_image()}-alt"
    client = docker_client()
    try:
        client.images.get(ensure_test_image()).tag(alt)
    finally:
        client.close()
    try:
        cli.data["redis"]["image"] = alt
        cli.save()
        before = container_ids(cli.cluster)
        plan = json.loads(cli.ok("up", "--dry-run", "--json").stdout)
        assert {p["node"]: p["action"] for p in plan[:len(nodes)]} == \
            {**dict.fromkeys(nodes, "noop"), "redis": "recreate"}
        assert container_ids(cli.cluster) == before
        assert cli.actions() == {**dict.fromkeys(nodes, "noop"), "redis": "recreate"}
        after = container_ids(cli.cluster)
        assert [n for n in nodes if after[n] != before[n]] == ["redis"]
    finally:
        client = docker_client()
        try:
            remove_cluster_resources(cli.cluster)
            client.images.remove(alt)
        finally:
            client.close()


def test_down_volumes_removes_everything(cli: Cli) -> None:
    cli.ok("up")
    cli.ok("down", "--volumes", "--yes")
    assert cluster_resources(cli.cluster) == {"containers": [], "volumes": [], "networks": []}
    assert not (cli.path.parent / ".streamctl" / cli.cluster).exists()


def test_redis_data_survives_recreate(cli: Cli) -> None:
    cli.data["analytics"]["enabled"] = False
    cli.data["fdw"]["enabled"] = False
    cli.save()
    cli.ok("up")
    url = cli.run("url", "redis").stdout.strip()
    import redis

    client = redis.Redis.from_url(url)
    client.set("e2e", "kept")
    client.close()
    cli.data["redis"]["cache_ttl_seconds"] = 301  # not part of the container: nothing to recreate
    cli.save()
    assert cli.actions() == {"coordinator": "noop", "redis": "noop"}
    cli.ok("down")
    cli.ok("up")
    client = redis.Redis.from_url(url)
    assert client.get("e2e") == b"kept"
    client.close()


def test_unreachable_engine_says_how_to_fix_it(cli: Cli) -> None:
    proc = cli.run("status", env={"DOCKER_HOST": "unix:///nonexistent/streamctl-e2e.sock"})
    assert proc.returncode == 4, proc.stderr
    assert "cannot reach the Docker engine" in proc.stderr
    assert "--backend local" in proc.stderr
