"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.cluster import topology_dict
from tests.support.dind import DindSwarm, dind_swarm
from tests.support.docker import DockerCluster, unique_cluster, use_image
from tests.support.images import ensure_citus_image, ensure_test_image


@pytest.fixture
def make_docker_cluster() -> Iterator[Callable[..., DockerCluster]]:
    """Factory: make_docker_cluster(**topology kwargs) -> DockerCluster (not started) on the test image, under a
    unique name, its topology in a directory the unprivileged server user can traverse; removed after."""
    made: list[DockerCluster] = []

    def factory(**kwargs: Any) -> DockerCluster:
        data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", **kwargs), ensure_test_image())
        made.append(DockerCluster.new(data))
        return made[-1]

    yield factory
    for cluster in made:
        cluster.destroy()


@pytest.fixture(scope="session")
def shared_swarm() -> Iterator[DindSwarm]:
    """One Swarm of three Docker-in-Docker hosts (db-1 its manager), the test images loaded into each, for every
    multi-host module: each makes and removes its own clusters on it and leaves the hosts as it found them
    (starting the nested engines and loading the images costs about 40 s, once instead of once a module)."""
    yield from dind_swarm([ensure_test_image(), ensure_citus_image()])
