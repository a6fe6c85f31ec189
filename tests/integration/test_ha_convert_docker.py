"""Turning ha on and off for a seeded Citus cluster on Docker (#27 item 6): `up` with an ha section added makes
each node's own data (its volume) its group's leader under Patroni, with a synchronous standby cloned from it
(same system identifiers, same rows and checksums, pg_dist_node names the leaders); removing the section keeps
each leader's data as the node and removes the standbys' and etcd's containers and volumes (refused, with nothing
changed, while a standby leads).

One cluster for the module (coordinator + 1 worker, no analytics, the smallest seed), walked through in order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.backends.docker.ha import LABEL_HA
from streamctl.citus import catalog
from streamctl.config.members import ha_groups
from streamctl.ha import rest
from tests.support.cluster import topology_dict
from tests.support.docker import DockerCluster, cluster_resources, docker_client, unique_cluster, use_image
from tests.support.ha import before_conversion, citus_sums, conversion_plan, physical_slots, set_ha, system_ids
from tests.support.images import ensure_citus_image, ensure_test_image
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.docker, pytest.mark.citus]


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[DockerCluster, dict[str, Any]]]:
    """The cluster, seeded, and what it held before ha was turned on (before_conversion)."""
    citus = ensure_citus_image()
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=True, workers=1, replicas=0,
                                   analytics=False, redis=False), ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus
    c = DockerCluster.new(data)
    c.timeout = 180.0  # the conversion clones a standby per group on a shared machine
    try:
        c.up()
        c.cli.ok("seed", "--scale", "0.01")
        yield c, before_conversion(c)
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def ha_section() -> dict[str, Any]:
    etcd = free_port_run(2)
    return {"standbys": 1, "synchronous": "on", "port": free_port_run(2), "rest_port": free_port_run(4),
            "etcd": {"port": etcd, "peer_port": etcd + 1}}


def _citus_checks_pass(c: DockerCluster) -> None:
    checks = c.cli.json("verify", "--only", "citus")["checks"]
    assert checks and {r["status"] for r in checks} <= {"passed", "skipped"}, checks


def test_turning_ha_on_makes_each_nodes_volume_its_groups_leader(seeded: tuple[DockerCluster, dict[str, Any]],
                                                                 ha_section: dict[str, Any]) -> None:
    c, before = seeded
    set_ha(c, ha_section)
    conversion_plan(c)
    c.up()
    assert system_ids(c) == before["sysids"]  # the same data, not a fresh initdb beside it
    assert citus_sums(c) == before["sums"]
    ca = c.ctx.ca_path() if c.ctx.tls_on else None
    groups = ha_groups(c.topology)
    for g in groups:
        roles = {s.name: s.ha_role for s in rest.group_members(g.members, ca)}
        assert roles == {g.members[0].name: "leader", g.members[1].name: "sync_standby"}, (g.node.name, roles)
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        assert catalog.group_leaders(conn) == {g.number: (g.members[0].name, 5432) for g in groups}
    client = docker_client()
    try:
        for g in groups:
            assert all(client.containers.get(f"{c.cluster}-{m.name}").labels[LABEL_HA] == "member" for m in g.members)
    finally:
        client.close()
    _citus_checks_pass(c)
    assert c.up().changed is False


def test_turning_ha_off_keeps_each_leaders_data_and_removes_the_rest(seeded: tuple[DockerCluster, dict[str, Any]],
                                                                    ha_section: dict[str, Any]) -> None:
    c, before = seeded
    c.cli.ok("switchover", "worker-1", "--to", "worker-1-2")
    set_ha(c, None)
    refused = c.cli.run("up")  # the node keeps its own member's data, and a standby leads: nothing changes
    assert refused.returncode == 10 and "worker-1-2 leads it" in refused.stderr, refused.stderr
    set_ha(c, ha_section)
    c.cli.ok("switchover", "worker-1", "--to", "worker-1")
    sums = citus_sums(c)
    assert sums == before["sums"]

    set_ha(c, None)
    c.up()
    assert system_ids(c) == before["sysids"] and citus_sums(c) == sums == before["sums"]
    found = cluster_resources(c.cluster)
    left = [n for kind in ("containers", "volumes") for n in found[kind]
            if n.removeprefix(f"{c.cluster}-").startswith(("coordinator-2", "worker-1-2", "etcd-"))]
    assert left == [], found
    client = docker_client()
    try:
        assert LABEL_HA not in client.containers.get(f"{c.cluster}-worker-1").labels
    finally:
        client.close()
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        assert catalog.secondaries(conn) == []
    assert {n: physical_slots(c, n) for n in ("coordinator", "worker-1")} == {"coordinator": [], "worker-1": []}
    _citus_checks_pass(c)
    assert c.up().changed is False
