"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import topology_dict, traversable_tmpdir
from tests.docker_helpers import DockerCluster, ensure_test_image, unique_cluster, use_image


@pytest.fixture
def make_docker_cluster() -> Iterator[Callable[..., DockerCluster]]:
    """Factory: make_docker_cluster(**topology kwargs) -> DockerCluster on the test image, under a unique
    name, its topology in a directory the unprivileged server user can traverse; removed after."""
    made: list[DockerCluster] = []

    def factory(**kwargs: Any) -> DockerCluster:
        data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", **kwargs), ensure_test_image())
        path = traversable_tmpdir() / "topology.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        cluster = DockerCluster(path)
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        cluster.destroy()
