"""Citus on a multi-host Swarm: three Docker-in-Docker nodes (db-1 the manager, db-2 and db-3 labelled
`streamctl.role=worker`) on a network the test creates; streamctl talks to the manager's nested engine.

Workers land on different hosts as the placement says, Citus registers them by service name across the
overlay, `verify` passes; draining a worker's host never moves the pinned worker (up refuses, status says
where it is pinned), and once the host is back its data is still there. Every node, volume and the
network are removed afterwards. Skips without the Citus build or when the node image cannot be built.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from streamctl.errors import ExitCode
from streamctl.readiness import Readiness
from tests.conftest import free_port, traversable_tmpdir
from tests.dind_swarm import DindSwarm, dind_swarm
from tests.docker_helpers import ensure_citus_image, ensure_test_image
from tests.swarm_helpers import Cli, citus_topology, distributed_counts, registered

pytestmark = [pytest.mark.docker, pytest.mark.multihost]

PLACEMENT = {"roles": {"coordinator": ["node.role == manager"], "redis": ["node.role == manager"],
                       "worker": ["node.labels.streamctl.role == worker"]}}


@pytest.fixture(scope="module")
def swarm() -> Iterator[DindSwarm]:
    ensure_test_image()
    image = ensure_citus_image()
    for made in dind_swarm([image]):
        manager = made.manager.client()
        try:
            for node in made.nodes[1:]:
                host = manager.nodes.get(node.swarm_id)
                host.update({**host.attrs["Spec"], "Labels": {"streamctl.role": "worker"}})
        finally:
            manager.close()
        yield made


@pytest.fixture
def cli(swarm: DindSwarm) -> Iterator[Cli]:
    image = ensure_citus_image()
    data = citus_topology(image)
    # The Citus part only, and so one image to load into every nested engine (Redis would need the plain
    # image there too).
    data["analytics"]["enabled"] = data["fdw"]["enabled"] = data["redis"]["enabled"] = False
    data["metadata"]["workers"]["port"] = free_port()
    data["placement"] = PLACEMENT
    directory = traversable_tmpdir()
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    c = Cli(path, env={"DOCKER_HOST": swarm.manager.docker_host})
    try:
        yield c
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=False)


def _tasks(swarm: DindSwarm, service: str) -> list[dict[str, Any]]:
    manager = swarm.manager.client()
    try:
        return list(manager.services.get(service).tasks())
    finally:
        manager.close()


def _set_availability(swarm: DindSwarm, node_id: str, availability: str) -> None:
    manager = swarm.manager.client()
    try:
        host = manager.nodes.get(node_id)
        host.update({**host.attrs["Spec"], "Availability": availability})
    finally:
        manager.close()


def test_workers_spread_over_hosts_and_a_drained_host_keeps_its_worker(cli: Cli, swarm: DindSwarm) -> None:
    first = cli.up_json()
    assert {n["action"] for n in first["nodes"]} == {"create"}
    hosts = {name: {t["NodeID"] for t in _tasks(swarm, f"{cli.cluster}-{name}") if t["Status"]["State"] == "running"}
             for name in ("coordinator", "worker-1", "worker-2")}
    workers = {swarm.node("db-2").swarm_id, swarm.node("db-3").swarm_id}
    assert hosts["coordinator"] == {swarm.manager.swarm_id}
    assert hosts["worker-1"] | hosts["worker-2"] == workers  # one worker on each labelled host
    assert registered(cli) == [f"{cli.cluster}-worker-1", f"{cli.cluster}-worker-2"]

    cli.ok("seed", "--scale", "0.01")
    verify = cli.run("verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    before = distributed_counts(cli)
    assert sum(before.values()) > 0

    # Drain worker-2's host: Swarm stops its task there and, pinned, it may not start anywhere else.
    (pinned,) = hosts["worker-2"]
    pinned_name = next(n.hostname for n in swarm.nodes if n.swarm_id == pinned)
    _set_availability(swarm, pinned, "drain")

    def stopped() -> bool:
        return not [t for t in _tasks(swarm, f"{cli.cluster}-worker-2") if t["Status"]["State"] == "running"]

    Readiness("worker-2's task to stop on the drained host", stopped, 60.0, interval=0.5).wait()
    proc = cli.run("up")
    assert proc.returncode == ExitCode.PREFLIGHT, proc.stderr
    assert f"worker-2 is pinned to {pinned_name}" in proc.stderr and "drain" in proc.stderr, proc.stderr
    rows = {r["name"]: r for r in json.loads(cli.run("status", "--json").stdout)["nodes"]}
    assert pinned_name in rows["worker-2"]["detail"] and "drain" in rows["worker-2"]["detail"], rows["worker-2"]
    assert rows["worker-1"]["state"] == "running"
    assert {t["NodeID"] for t in _tasks(swarm, f"{cli.cluster}-worker-2") if t.get("NodeID")} == {pinned}
    others = [n for n in swarm.nodes if n.swarm_id != pinned]
    for node in others:  # no empty volume was made for it anywhere else
        nested = node.client()
        try:
            assert f"{cli.cluster}-worker-2-data" not in [v.name for v in nested.volumes.list()]
        finally:
            nested.close()

    # The host comes back: `up` resumes worker-2 where its volume is, with its data.
    _set_availability(swarm, pinned, "active")
    cli.ok("up")
    assert {t["NodeID"] for t in _tasks(swarm, f"{cli.cluster}-worker-2") if t["Status"]["State"] == "running"} \
        == {pinned}
    assert distributed_counts(cli) == before
    verify = cli.run("verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
