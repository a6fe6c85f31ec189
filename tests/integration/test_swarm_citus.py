"""Citus on a real single-node Swarm: the default topology with MongoDB off, coordinator and workers from
the Citus test image, analytics and Redis from the plain test image; up, seed, verify, scale out and in.

The engine is made a Swarm for the module (`swarm init --advertise-addr 127.0.0.1`) and left again unless it
already was a member. Skips without the Citus build the Citus test image is made from (images/build-citus.sh).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.cli import Cli
from tests.support.docker import cli_for, docker_client, example_topology
from tests.support.images import ensure_citus_image, ensure_test_image
from tests.support.swarm import SwarmSession, distributed_counts, registered, swarm_resources, swarm_session

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def citus_image() -> str:
    ensure_test_image()
    return ensure_citus_image()


@pytest.fixture(scope="module")
def swarm(citus_image: str) -> Iterator[SwarmSession]:
    yield from swarm_session()


@pytest.fixture
def cli(swarm: SwarmSession, citus_image: str) -> Iterator[Cli]:
    data = example_topology("topology.yaml", citus_image=citus_image, backend="local", bind="0.0.0.0")
    with cli_for(data, backend="swarm") as c:
        yield c


def test_citus_on_a_single_node_swarm(cli: Cli, swarm: SwarmSession) -> None:
    first = cli.json("up")
    assert {n["action"] for n in first["nodes"]} == {"create"}
    services = swarm_resources(cli.cluster)["services"]
    assert f"{cli.cluster}-worker-1" in services and f"{cli.cluster}-worker-2" in services
    # Workers are registered by their service names on the overlay (DNS round-robin endpoints).
    assert registered(cli) == [f"{cli.cluster}-worker-1", f"{cli.cluster}-worker-2"]
    client = docker_client()
    for name in ("coordinator", "worker-1"):
        spec = client.services.get(f"{cli.cluster}-{name}").attrs["Spec"]
        assert spec["TaskTemplate"]["ContainerSpec"]["Image"].startswith(cli.data["metadata"]["workers"]["image"])
        assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in spec["TaskTemplate"]["ContainerSpec"]["Env"]

    cli.ok("seed", "--scale", "0.01")
    verify = cli.run("verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    before = distributed_counts(cli)
    assert sum(before.values()) > 0

    assert not cli.json("up")["changed"]  # a second up is a no-op

    cli.ok("scale", "--workers", "3", "--json")
    assert registered(cli) == [f"{cli.cluster}-worker-{i}" for i in (1, 2, 3)]
    holders = cli.sql("coordinator", "SELECT count(DISTINCT p.nodename) FROM pg_dist_shard_placement p JOIN "
                                     "pg_dist_shard USING (shardid) JOIN pg_dist_partition d USING (logicalrelid) "
                                     "WHERE d.partmethod = 'h'")
    assert int(holders) == 3  # hash-distributed shards rebalanced onto the new worker
    assert distributed_counts(cli) == before

    cli.ok("scale", "--workers", "2", "--json")
    assert registered(cli) == [f"{cli.cluster}-worker-1", f"{cli.cluster}-worker-2"]
    assert f"{cli.cluster}-worker-3" not in swarm_resources(cli.cluster)["services"]
    assert distributed_counts(cli) == before
    assert cli.run("verify", "--json").returncode == 0
    rows = json.loads(cli.ok("status", "--json").stdout)["nodes"]
    assert all(r["state"] == "running" and r["healthy"] for r in rows), rows
