"""End to end through the CLI on a real Docker engine, with examples/no-citus.yaml.

The example's images are replaced by the locally built test image (no registry is reachable here), its
ports by free ones and its cluster name by a unique one (tests run side by side); nothing else changes.
The topology says `backend: local`, so every command also proves that `--backend docker` overrides it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, traversable_tmpdir
from tests.docker_helpers import (
    REPO,
    cluster_resources,
    docker_client,
    ensure_test_image,
    remove_cluster_resources,
    unique_cluster,
    use_image,
)

pytestmark = [pytest.mark.docker]


class Cli:
    """Runs `python -m streamctl ... -f topology --backend docker` in the topology's directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = yaml.safe_load(path.read_text())

    @property
    def cluster(self) -> str:
        return str(self.data["cluster"])

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def run(self, *args: str, env: dict[str, str] | None = None,
            backend: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["-f", str(self.path), *(["--backend", "docker"] if backend else [])]
        argv = [sys.executable, "-m", "streamctl", *args[:1], *extra, *args[1:]]
        return subprocess.run(argv, capture_output=True, text=True, cwd=self.path.parent, timeout=600,
                              env={**os.environ, **(env or {})})

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"streamctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def up_json(self) -> dict[str, str]:
        out = json.loads(self.ok("up", "--json").stdout)
        return {n["name"]: n["action"] for n in out["nodes"]}

    def sql(self, query: str) -> str:
        return self.ok("psql", "coordinator", "--", "-At", "-c", query).stdout.strip()


@pytest.fixture
def cli() -> Iterator[Cli]:
    image = ensure_test_image()
    data = yaml.safe_load((REPO / "examples" / "no-citus.yaml").read_text())
    data["cluster"] = unique_cluster()
    data["backend"] = "local"
    use_image(data, image)
    data["metadata"]["coordinator"]["port"] = free_port()
    data["metadata"]["workers"]["port"] = free_port()
    data["analytics"]["primary"]["port"] = free_port()
    for replica in data["analytics"]["replicas"]:
        replica["port"] = free_port()
    data["redis"]["port"] = free_port()
    data["gateway"]["port"] = free_port()
    data["secrets"] = {}  # generated, not taken from this machine's environment
    directory = traversable_tmpdir()
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    c = Cli(path)
    try:
        yield c
    finally:
        remove_cluster_resources(c.cluster)
        subprocess.run(["rm", "-rf", str(directory)], check=False)


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
    cli.sql("CREATE TABLE e2e_kept AS SELECT 'kept' AS v")
    cli.ok("down")
    left = cluster_resources(cli.cluster)
    assert left["containers"] == []
    # one data volume per node, plus the cluster's initialised PostgreSQL template (kept for new nodes)
    assert sorted(v for v in left["volumes"] if "-pgtemplate-" not in v) == \
        sorted(f"{cli.cluster}-{n}-data" for n in nodes)
    assert len(left["volumes"]) == len(nodes) + 1
    assert cli.up_json() == dict.fromkeys(nodes, "create")
    assert cli.sql("SELECT v FROM e2e_kept") == "kept"

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
    assert cli.up_json() == {**dict.fromkeys(nodes, "noop"), "analytics-replica-1": "start"}

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
        assert cli.up_json() == {**dict.fromkeys(nodes, "noop"), "redis": "recreate"}
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
    url = cli.run("url", "redis", backend=False).stdout.strip()
    import redis

    client = redis.Redis.from_url(url)
    client.set("e2e", "kept")
    client.close()
    cli.data["redis"]["cache_ttl_seconds"] = 301  # not part of the container: nothing to recreate
    cli.save()
    assert cli.up_json() == {"coordinator": "noop", "redis": "noop"}
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
