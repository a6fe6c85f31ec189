"""Tests against a real Docker engine: clusters under unique names on the test image, the example topologies
made runnable here, and what a cluster left behind (found, and removed, by its labels)."""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

from streamctl.backends.docker.backend import DockerBackend
from streamctl.backends.docker.spec import LABEL_CLUSTER
from tests.support import REPO
from tests.support.cli import Cli
from tests.support.cluster import LocalCluster, save_topology, traversable_tmpdir
from tests.support.images import ensure_test_image
from tests.support.ports import free_port, free_port_run


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def unique_cluster() -> str:
    """Docker names are global: every test cluster gets its own name (and so its own network)."""
    return f"t{uuid.uuid4().hex[:10]}"


def use_image(data: dict[str, Any], image: str) -> dict[str, Any]:
    """Point every node of a topology dict at `image` (the registry images cannot be pulled here)."""
    data["metadata"]["coordinator"]["image"] = image
    data["metadata"].setdefault("workers", {})["image"] = image
    if data["analytics"].get("primary") is not None:
        data["analytics"]["primary"]["image"] = image
    data["mongo"]["image"] = image
    data["redis"]["image"] = image
    return data


def example_topology(name: str = "examples/no-citus.yaml", citus_image: str | None = None,
                     **top: Any) -> dict[str, Any]:
    """A topology file of this checkout as it can run here: the test image (the coordinator and workers on
    `citus_image` when given), free ports (a run of three for the workers), a unique cluster name, MongoDB
    off, secrets generated rather than taken from this machine's environment; `top` sets top-level keys."""
    data = yaml.safe_load((REPO / name).read_text())
    data.update(cluster=unique_cluster(), secrets={}, **top)
    data["mongo"]["enabled"] = False
    use_image(data, ensure_test_image())
    if citus_image is not None:
        data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus_image
    for section in (data["metadata"]["coordinator"], data["analytics"]["primary"], *data["analytics"]["replicas"],
                    data["redis"], data["gateway"]):
        section["port"] = free_port()
    data["metadata"]["workers"]["port"] = free_port_run(3)
    return data


@contextlib.contextmanager
def cli_for(data: dict[str, Any], backend: str) -> Iterator[Cli]:
    """A Cli for `data` written to a fresh directory, on `backend` (docker or swarm); afterwards whatever the
    test left of the cluster is removed, and the directory."""
    directory = traversable_tmpdir()
    cli = Cli(save_topology(directory, data), backend=backend, timeout=900)
    try:
        yield cli
    finally:
        try:
            remove_cluster_resources(cli.cluster)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


KINDS = ("containers", "volumes", "networks")
SWARM_KINDS = ("services", "secrets", "networks", "volumes")


def labelled(label: str, kinds: tuple[str, ...] = KINDS) -> dict[str, list[str]]:
    """The names of every object of each kind (containers, volumes, networks, services, secrets) labelled
    `label` ("key=value")."""
    client = docker_client()
    try:
        flt = {"label": label}
        return {kind: sorted(o.name for o in getattr(client, kind).list(filters=flt, **_all(kind)))
                for kind in kinds}
    finally:
        client.close()


def _all(kind: str) -> dict[str, bool]:
    return {"all": True} if kind == "containers" else {}  # stopped ones too


def cluster_resources(cluster: str) -> dict[str, list[str]]:
    return labelled(f"{LABEL_CLUSTER}={cluster}")


def remove_labelled(label: str) -> None:
    """Every object labelled `label`, whatever state a test left it in: Swarm services first (their tasks'
    containers go with them), then containers, secrets, volumes and networks."""
    from docker.errors import APIError

    client = docker_client()

    def found(kind: str) -> list[Any]:
        try:
            return list(getattr(client, kind).list(filters={"label": label}, **_all(kind)))
        except APIError:  # services and secrets: the engine is no Swarm manager (any more), so there are none
            return []

    try:
        services = found("services")
        for service in services:
            service.remove()
        deadline = time.monotonic() + 60
        while services and time.monotonic() < deadline and found("containers"):
            time.sleep(0.5)  # test clean-up only: the library waits with readiness objects
        for kind, how in (("containers", {"force": True, "v": True}), ("secrets", {}),
                          ("volumes", {"force": True}), ("networks", {})):
            for one in found(kind):
                with contextlib.suppress(APIError):  # gone meanwhile (Swarm removes its own), or still in use
                    one.remove(**how)
    finally:
        client.close()


def remove_cluster_resources(cluster: str) -> None:
    remove_labelled(f"{LABEL_CLUSTER}={cluster}")


class DockerCluster(LocalCluster):
    """A real cluster of containers, its topology file in a temporary directory."""

    backend_class = DockerBackend
    timeout = 90.0

    @property
    def cluster(self) -> str:
        return self.topology.cluster

    def restart(self, name: str) -> None:
        """Restart node `name`'s container (as the engine does after a crash) and wait until it is ready."""
        client = docker_client()
        try:
            client.containers.get(f"{self.cluster}-{name}").restart(timeout=30)
        finally:
            client.close()
        node = self.topology.node(name)
        assert node is not None
        self.backend.readiness(node, 60).wait()

    def destroy(self) -> None:
        try:
            remove_cluster_resources(self.cluster)
        finally:
            shutil.rmtree(self.path.parent, ignore_errors=True)
