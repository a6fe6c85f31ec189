"""A real single-node Swarm on the test engine: joined for the session (and left again unless the engine
already was a member), the CLI driven against it, Citus topologies for it, and label-based clean-up of a
test cluster's services, secrets, networks and volumes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backends.docker.spec import LABEL_CLUSTER
from tests.conftest import free_port, free_port_run
from tests.docker_helpers import REPO, docker_client, ensure_test_image, unique_cluster, use_image


@dataclass
class SwarmSession:
    node_id: str
    joined_here: bool  # the session ran `swarm init`, so it leaves at the end


def swarm_state() -> str:
    """The engine's `docker info --format '{{.Swarm.LocalNodeState}}'`: inactive, active, pending, ..."""
    client = docker_client()
    try:
        return str((client.info().get("Swarm") or {}).get("LocalNodeState") or "inactive")
    finally:
        client.close()


def swarm_session() -> Iterator[SwarmSession]:
    """Make the engine a single-node Swarm manager (`docker swarm init --advertise-addr 127.0.0.1`) for the
    tests that need one, and leave it afterwards unless the engine already was a member."""
    client = docker_client()
    try:
        swarm = client.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") == "active" and not swarm.get("ControlAvailable"):
            pytest.skip("the test engine is a Swarm worker; the Swarm tests need a manager")
        joined = swarm.get("LocalNodeState") != "active"
        if joined:
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        try:
            yield SwarmSession(str(client.info()["Swarm"]["NodeID"]), joined)
        finally:
            if joined:
                client.swarm.leave(force=True)
    finally:
        client.close()


def swarm_resources(cluster: str) -> dict[str, list[str]]:
    client = docker_client()
    try:
        flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
        return {"services": sorted(s.name for s in client.services.list(filters=flt)),
                "secrets": sorted(s.name for s in client.secrets.list(filters=flt)),
                "networks": sorted(n.name for n in client.networks.list(filters=flt)),
                "volumes": sorted(v.name for v in client.volumes.list(filters=flt))}
    finally:
        client.close()


def remove_swarm_cluster(cluster: str) -> None:
    """Whatever state a test left: services first, then (once their containers are gone) the rest."""
    from docker.errors import NotFound

    client = docker_client()
    try:
        flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
        for service in client.services.list(filters=flt):
            service.remove()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.containers.list(all=True, filters=flt):
            time.sleep(0.5)  # test clean-up only: the library waits with readiness objects
        for container in client.containers.list(all=True, filters=flt):
            with contextlib.suppress(NotFound):  # Swarm may remove it between the list and here
                container.remove(force=True)
        for secret in client.secrets.list(filters=flt):
            with contextlib.suppress(NotFound):
                secret.remove()
        for network in client.networks.list(filters=flt):
            with contextlib.suppress(Exception):
                network.remove()
        for volume in client.volumes.list(filters=flt):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
    finally:
        client.close()


TAKES_BACKEND = {"up", "down", "status", "logs", "psql", "scale"}  # the others read the recorded state


class Cli:
    """`python -m streamctl CMD -f topology [--backend swarm] ...` in the topology's directory."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = env or {}  # e.g. DOCKER_HOST of a Swarm manager
        self.data: dict[str, Any] = yaml.safe_load(path.read_text())

    @property
    def cluster(self) -> str:
        return str(self.data["cluster"])

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        override = ["--backend", "swarm"] if args[0] in TAKES_BACKEND else []
        argv = [sys.executable, "-m", "streamctl", args[0], "-f", str(self.path), *override, *args[1:]]
        return subprocess.run(argv, capture_output=True, text=True, cwd=self.path.parent, timeout=900,
                              env={**os.environ, **self.env, **(env or {})})

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"streamctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def up_json(self) -> dict[str, Any]:
        return json.loads(self.ok("up", "--json").stdout)

    def sql(self, node: str, query: str) -> str:
        return self.ok("psql", node, "--", "-At", "-c", query).stdout.strip()


def distributed_counts(cli: Cli) -> dict[str, int]:
    """Rows of every Citus distributed or reference table, counted through the coordinator."""
    tables = cli.sql("coordinator", "SELECT logicalrelid::regclass::text FROM pg_dist_partition ORDER BY 1").split()
    assert tables, "no distributed tables"
    return {t: int(cli.sql("coordinator", f"SELECT count(*) FROM {t}")) for t in tables}


def citus_topology(citus_image: str) -> dict[str, Any]:
    """topology.yaml with MongoDB off, the test images, free ports (a block of three for the workers)."""
    data = yaml.safe_load((REPO / "topology.yaml").read_text())
    data.update(cluster=unique_cluster(), backend="local", bind="0.0.0.0", secrets={})
    data["mongo"]["enabled"] = False
    use_image(data, ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus_image
    for section in (data["metadata"]["coordinator"], data["analytics"]["primary"], *data["analytics"]["replicas"],
                    data["redis"], data["gateway"]):
        section["port"] = free_port()
    data["metadata"]["workers"]["port"] = free_port_run(3)
    return data


def registered(cli: Cli) -> list[str]:
    rows = cli.sql("coordinator", "SELECT nodename FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0 "
                                  "AND isactive ORDER BY 1")
    return rows.split()
