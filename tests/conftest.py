"""Fixtures and hooks shared by every test; the plain helpers they use live in tests/support/.

A test marked with an engine's name skips with the reason when that engine is absent (or fails, when
STREAMCTL_REQUIRE lists it: tests/support/engines.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.cluster import LocalCluster, topology_dict
from tests.support.engines import CHECKS, require


def pytest_runtest_setup(item: pytest.Item) -> None:
    require(*(engine for engine in CHECKS if item.get_closest_marker(engine) is not None))


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., LocalCluster]]:
    """Factory: make_cluster(**topology kwargs) -> LocalCluster (not started). Destroyed afterwards."""
    made: list[LocalCluster] = []

    def factory(**kwargs: Any) -> LocalCluster:
        made.append(LocalCluster.new(topology_dict(**kwargs)))
        return made[-1]

    yield factory
    for cluster in made:
        with contextlib.suppress(Exception):  # best-effort cleanup
            cluster.destroy()
