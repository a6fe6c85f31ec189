"""The shared backend compliance suite: every backend must behave the same through the Backend protocol.

Each test runs against the local backend (real PostgreSQL and Redis processes) and the Docker backend
(real containers of the locally built test image). One PostgreSQL node and one Redis node are enough.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backends.base import Action, Backend, NodeState
from streamctl.backends.docker.backend import DockerBackend
from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.plan import decide
from tests.support.cluster import topology_dict, traversable_tmpdir
from tests.support.docker import remove_cluster_resources, unique_cluster, use_image
from tests.support.images import ensure_test_image


class Harness:
    """One backend with a created-but-not-started cluster: secrets made, endpoints recorded."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        data = topology_dict(cluster=unique_cluster(), backend=kind, analytics=False, replicas=0, fdw=False)
        if kind == "docker":
            use_image(data, ensure_test_image())
        path = directory / "topology.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.topology = load_topology(path)
        self.ctx = ClusterContext.build(self.topology, path)
        self.backend: Backend = DockerBackend(self.ctx) if kind == "docker" else LocalBackend(self.ctx)
        self.ctx.store.secrets(self.topology, create=True)
        self.ctx.store.record_endpoints(self.backend.name, [self.backend.endpoint(n) for n in self.nodes])

    @property
    def nodes(self) -> list[Node]:
        return self.topology.nodes()

    @property
    def pg(self) -> Node:
        return self.topology.node("coordinator")  # type: ignore[return-value]

    @property
    def redis_node(self) -> Node:
        return self.topology.node("redis")  # type: ignore[return-value]

    def converge(self, node: Node) -> Action:
        """What `up` does for one node: decide, apply, wait until ready."""
        action = decide(self.backend.observe(node), self.backend.desired_fingerprint(node))
        self.backend.apply(node, action)
        self.backend.readiness(node, 90).wait()
        return action

    def query(self, sql: str) -> Any:
        # The `postgres` database: creating the node's own database is the services' job, not the backend's.
        with self.ctx.pg_connect("coordinator", "postgres") as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
            return row[0] if row else None

    def execute(self, sql: str) -> None:
        with self.ctx.pg_connect("coordinator", "postgres") as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def kill(self, node: Node) -> None:
        # Not in the protocol: both backends offer it so tests can simulate a crash.
        self.backend.kill(node)  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        for node in self.nodes:
            with suppress(Exception):  # best effort; the label sweep below catches the rest
                self.backend.remove(node, volumes=True)
        if self.kind == "docker":
            remove_cluster_resources(self.topology.cluster)


BACKENDS = [
    pytest.param("local", marks=[pytest.mark.postgres, pytest.mark.redis], id="local"),
    pytest.param("docker", marks=[pytest.mark.docker], id="docker"),
]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    directory = traversable_tmpdir()
    h: Harness | None = None
    try:
        h = Harness(request.param, directory)
        yield h
    finally:
        if h is not None:
            h.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def test_missing_nodes_are_created_running_and_ready(harness: Harness) -> None:
    for node in harness.nodes:
        assert harness.backend.observe(node).state is NodeState.MISSING
        assert harness.converge(node) is Action.CREATE
        obs = harness.backend.observe(node)
        assert obs.state is NodeState.RUNNING
        assert obs.fingerprint == harness.backend.desired_fingerprint(node)
        assert decide(obs, harness.backend.desired_fingerprint(node)) is Action.NOOP
    assert harness.query("SELECT current_user") == harness.topology.pg_user
    client = harness.ctx.redis()
    assert client.ping()
    client.close()


def test_stop_keeps_data_and_start_brings_it_back(harness: Harness) -> None:
    harness.converge(harness.pg)
    harness.execute("CREATE TABLE kept AS SELECT 41 + 1 AS answer")
    harness.backend.stop(harness.pg)
    assert harness.backend.observe(harness.pg).state is NodeState.STOPPED
    assert harness.converge(harness.pg) is Action.START
    assert harness.query("SELECT answer FROM kept") == 42


def test_remove_without_volumes_keeps_data(harness: Harness) -> None:
    harness.converge(harness.pg)
    harness.execute("CREATE TABLE kept AS SELECT 7 AS n")
    harness.backend.remove(harness.pg, volumes=False)
    assert harness.backend.observe(harness.pg).state is not NodeState.RUNNING
    harness.converge(harness.pg)
    assert harness.query("SELECT n FROM kept") == 7


def test_remove_with_volumes_removes_data(harness: Harness) -> None:
    harness.converge(harness.pg)
    harness.execute("CREATE TABLE gone AS SELECT 1 AS n")
    harness.backend.remove(harness.pg, volumes=True)
    assert harness.backend.observe(harness.pg).state is NodeState.MISSING
    assert harness.converge(harness.pg) is Action.CREATE
    assert harness.query("SELECT to_regclass('gone') IS NULL") is True


def test_killed_node_is_started_again(harness: Harness) -> None:
    harness.converge(harness.redis_node)
    harness.kill(harness.redis_node)
    obs = harness.backend.observe(harness.redis_node)
    assert obs.state is NodeState.STOPPED
    assert harness.converge(harness.redis_node) is Action.START


def test_changed_definition_recreates_and_keeps_data(harness: Harness) -> None:
    harness.converge(harness.pg)
    harness.execute("CREATE TABLE kept AS SELECT 'still here'::text AS s")
    changed = replace(harness.pg, settings=(*harness.pg.settings, ("work_mem", "7MB")))
    assert harness.backend.desired_fingerprint(changed) != harness.backend.desired_fingerprint(harness.pg)
    assert decide(harness.backend.observe(changed), harness.backend.desired_fingerprint(changed)) \
        is Action.RECREATE
    assert harness.converge(changed) is Action.RECREATE
    assert harness.query("SHOW work_mem") == "7MB"
    assert harness.query("SELECT s FROM kept") == "still here"


def test_logs_are_not_empty(harness: Harness) -> None:
    for node in harness.nodes:
        harness.converge(node)
        assert harness.backend.logs(node, 20), f"no log lines for {node.name}"
        assert len(harness.backend.logs(node, 3)) <= 3


def test_endpoint_reaches_the_node_from_this_host(harness: Harness) -> None:
    ep = harness.backend.endpoint(harness.pg)
    assert (ep.host, ep.port) == (harness.pg.host, harness.pg.port)
    assert ep.internal_host and ep.internal_port
    harness.converge(harness.pg)
    assert harness.query("SELECT inet_server_port()") == ep.internal_port


def test_write_pg_file_lands_in_the_data_directory(harness: Harness) -> None:
    harness.converge(harness.pg)
    text = "# written by the compliance suite\n"
    harness.backend.write_pg_file(harness.pg, "streamctl_probe.conf", text)
    assert harness.query("SELECT pg_read_file('streamctl_probe.conf')") == text


def test_source_address_is_an_ip(harness: Harness) -> None:
    harness.converge(harness.pg)
    ipaddress.ip_address(harness.backend.source_address(harness.pg))


def test_psql_argv_runs_a_query(harness: Harness) -> None:
    harness.converge(harness.pg)
    argv, env = harness.backend.psql_argv(harness.pg, harness.topology.pg_user,
                                          harness.ctx.secrets["postgres_password"], "postgres",
                                          ["-At", "-c", "SELECT 6 * 7"])
    proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"
    assert harness.ctx.secrets["postgres_password"] not in " ".join(argv)
