"""HA on Swarm (#27), the part built so far: the HA member image, built on the manager, put on the other hosts
of a three-host Swarm (Docker-in-Docker, tests/support/dind.py) with no registry and through the manager's
engine only (streamctl/backends/swarm/image_spread.py); a second spread finds it everywhere and loads nothing;
a host that cannot run the one-shot task is named. HA members on Swarm are still refused (tests/unit).

Marked `multihost`: scripts/test runs these in their own pytest phase."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.backends.docker.ha_image import member_image
from streamctl.backends.swarm.image_spread import ImageSpread
from streamctl.backends.swarm.placement import Pin
from tests.support.dind import DindSwarm, dind_swarm
from tests.support.images import ensure_citus_image

pytestmark = [pytest.mark.docker, pytest.mark.multihost]

NETWORK = "spread-net"


@pytest.fixture(scope="module")
def swarm() -> Iterator[DindSwarm]:
    yield from dind_swarm([ensure_citus_image()])


@pytest.fixture(scope="module")
def manager(swarm: DindSwarm) -> Iterator[Any]:
    client = swarm.manager.client()
    try:
        client.networks.create(NETWORK, driver="overlay", attachable=False, scope="swarm")
        yield client
    finally:
        client.close()


def _pins(swarm: DindSwarm) -> list[Pin]:
    return [Pin(n.swarm_id, n.hostname, n.ip) for n in swarm.nodes]


def _image_ids(swarm: DindSwarm, tag: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for node in swarm.nodes:
        client = node.client()
        try:
            found = client.images.list(name=tag.split(":")[0])
            out[node.hostname] = next((i.id for i in found if tag in i.tags), None)
        finally:
            client.close()
    return out


def test_member_image_reaches_every_host_through_the_manager(swarm: DindSwarm, manager: Any) -> None:
    tag = member_image(manager, ensure_citus_image())
    before = _image_ids(swarm, tag)
    assert before["db-1"] is not None and before["db-2"] is None and before["db-3"] is None, before
    pins = _pins(swarm)
    spread = ImageSpread(manager, "spread", NETWORK, pins[0])
    runners = {p.id: ensure_citus_image() for p in pins}
    start = time.monotonic()
    first = spread.spread(tag, runners, pins)
    took = time.monotonic() - start
    print(f"\nspread of {tag} to 2 hosts: {took:.1f} s; {first}")
    assert set(first) == {"db-2", "db-3"} and all(v.startswith("loaded ") for v in first.values()), first
    assert set(_image_ids(swarm, tag).values()) == {before["db-1"]}  # the same image id everywhere

    start = time.monotonic()
    again = spread.spread(tag, runners, pins)
    print(f"second spread (cached): {time.monotonic() - start:.1f} s; {again}")
    assert again == {"db-2": "present", "db-3": "present"}
    left = [s.name for s in manager.services.list() if "-img" in s.name]
    assert left == [], left  # the feeder and the one-shot tasks are gone


def test_a_host_without_the_runner_image_is_named(swarm: DindSwarm, manager: Any) -> None:
    pins = _pins(swarm)
    tag = member_image(manager, ensure_citus_image())
    spread = ImageSpread(manager, "spread", NETWORK, pins[0])
    runners = {p.id: "streamctl-test/absent:none" for p in pins}
    other = swarm.node("db-2").client()
    try:
        other.images.remove(tag, force=True)
    finally:
        other.close()
    with pytest.raises(Exception) as raised:
        spread.spread(tag, runners, pins[:2], timeout=120.0)
    assert "db-2" in " ".join(getattr(raised.value, "details", [])), raised.value

