"""Turning ha on, then off, for the analytics primary of a cluster that holds data, on the Docker backend (#27
item 6): a cluster made without ha (Citus off, so it stays small; the coordinator reads the analytics primary
through its FDW) with one logical replica and rows on the primary gains `ha.analytics.standbys: 1`; `up` makes
the primary's own volume its group's leader (same system identifier, same rows and checksums), clones a standby
container from it, keeps the replica's slot (permanent, on both members), and re-points the replica's
subscription and the FDW server at the members' names, so a row written after the conversion reaches the
replica. Turning ha off is refused while the standby leads (nothing changes); once the node's own member leads
again, it keeps that data as the plain primary, removes the standby's and etcd's containers and volumes, and
replication flows to the single host again.

One cluster for the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamctl.backends.docker.ha import LABEL_HA
from streamctl.names import subscription_name
from tests.support import ha as hs
from tests.support.cluster import topology_dict
from tests.support.docker import DockerCluster, cluster_resources, docker_client, unique_cluster, use_image
from tests.support.images import ensure_test_image

pytestmark = [pytest.mark.docker]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=False, replicas=1,
                                   redis=False), ensure_test_image())
    c = DockerCluster.new(data)
    c.timeout = 180.0  # the conversion clones a standby on a shared machine
    try:
        c.up()
        yield c
    finally:
        c.destroy()


def _labels(c: DockerCluster, name: str) -> dict[str, str]:
    client = docker_client()
    try:
        return dict(client.containers.get(f"{c.cluster}-{name}").labels or {})
    finally:
        client.close()


def test_turning_ha_on_and_off_for_the_analytics_primary_keeps_its_data_and_replication(
        cluster: DockerCluster) -> None:
    c = cluster
    hs.insert_users(c, "seed", 200)
    hs.wait_until("the replica caught up", lambda: hs.analytics_sums(c, REPLICA) == hs.analytics_sums(c, PRIMARY), 90)
    sums, sysid = hs.analytics_sums(c, PRIMARY), hs.system_ids(c, (PRIMARY,))
    assert sums["users"][0] >= 200, sums

    ha = hs.analytics_ha()
    ha["loop_wait"] = 2
    hs.set_ha(c, ha)
    c.up()
    assert hs.system_ids(c, (PRIMARY,)) == sysid  # the node's own volume leads, not a fresh initdb beside it
    assert hs.analytics_sums(c, PRIMARY) == sums
    hs.check_analytics_group(c, SLOT)  # led, a sync standby cloned from it, the slot permanent on both
    assert _labels(c, PRIMARY)[LABEL_HA] == _labels(c, STANDBY)[LABEL_HA] == "member"
    sub, srv = hs.replication_targets(c, SLOT)
    assert f"host={PRIMARY},{STANDBY}" in sub and "target_session_attrs=primary" in sub, sub
    assert f"host={PRIMARY},{STANDBY}" in srv and "target_session_attrs=primary" in srv, srv
    hs.replication_flows(c, "after-ha-on")
    hs.verify_passes(c, "ha,replication")
    assert hs.analytics_sums(c, REPLICA) == hs.analytics_sums(c, PRIMARY)
    assert c.up().changed is False

    c.cli.ok("switchover", PRIMARY, "--to", STANDBY)
    hs.set_ha(c, None)
    refused = c.cli.run("up")  # the node keeps its own member's data, and the standby leads: nothing changes
    assert refused.returncode == 10 and f"{STANDBY} leads it" in refused.stderr, refused.stderr
    hs.set_ha(c, ha)
    c.cli.ok("switchover", PRIMARY, "--to", PRIMARY)
    sums = hs.analytics_sums(c, PRIMARY)

    hs.set_ha(c, None)
    c.up()
    assert hs.system_ids(c, (PRIMARY,)) == sysid and hs.analytics_sums(c, PRIMARY) == sums
    found = cluster_resources(c.cluster)
    left = [n for kind in ("containers", "volumes") for n in found[kind]
            if n.removeprefix(f"{c.cluster}-").startswith((STANDBY, "etcd-"))]
    assert left == [], found
    assert LABEL_HA not in _labels(c, PRIMARY)
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (SLOT,)).fetchone() == (1,)  # the replica's slot kept
    assert hs.physical_slots(c, PRIMARY) == []  # Patroni's for the standby, which would keep WAL for ever
    sub, srv = hs.replication_targets(c, SLOT)
    assert "target_session_attrs" not in sub and "target_session_attrs" not in srv, (sub, srv)
    hs.replication_flows(c, "after-ha-off")
    hs.verify_passes(c, "replication")
    assert hs.analytics_sums(c, REPLICA) == hs.analytics_sums(c, PRIMARY)
    assert c.up().changed is False
