"""A real single-node Swarm on the test engine: joined for the session (and left again unless the engine
already was a member), plus label-based clean-up of a test cluster's services, secrets, networks, volumes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamctl.backends.docker_spec import LABEL_CLUSTER
from tests.docker_helpers import docker_client


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
