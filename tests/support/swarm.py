"""A real single-node Swarm on the test engine (joined for the session, and left again unless the engine
already was a member), what a test cluster has on it, and the Citus questions the Swarm tests ask through
the CLI. A cluster's services, secrets, networks and volumes are removed by tests/support/docker.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamctl.backends.docker.spec import LABEL_CLUSTER
from tests.support.cli import Cli
from tests.support.docker import SWARM_KINDS, docker_client, labelled


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
    return labelled(f"{LABEL_CLUSTER}={cluster}", SWARM_KINDS)


def distributed_counts(cli: Cli) -> dict[str, int]:
    """Rows of every Citus distributed or reference table, counted through the coordinator."""
    tables = cli.sql("coordinator", "SELECT logicalrelid::regclass::text FROM pg_dist_partition ORDER BY 1").split()
    assert tables, "no distributed tables"
    return {t: int(cli.sql("coordinator", f"SELECT count(*) FROM {t}")) for t in tables}


def registered(cli: Cli) -> list[str]:
    """The active Citus workers, by the names the coordinator knows them by."""
    rows = cli.sql("coordinator", "SELECT nodename FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0 "
                                  "AND isactive ORDER BY 1")
    return rows.split()
