"""Turning ha on, then off, for the analytics primary of a cluster that holds data, on the local backend (#27
item 6): a cluster made without ha (Citus off, so it stays small; the coordinator reads the analytics primary
through its FDW) with one logical replica and rows on the primary gains `ha.analytics.standbys: 1`; `up` makes
the primary's own data directory its group's leader (same system identifier, same rows and checksums), clones a
standby from it, keeps the replica's slot, and re-points the replica's subscription and the FDW server at the
group's members, so a row written after the conversion reaches the replica. Turning ha off keeps the leader's
data as the plain primary, removes the standby, and replication still flows to the single host again.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamctl.names import subscription_name
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import (
    analytics_ha,
    analytics_sums,
    check_analytics_group,
    insert_users,
    physical_slots,
    replication_flows,
    replication_targets,
    set_ha,
    system_ids,
    verify_passes,
    wait_until,
)

pytestmark = [pytest.mark.etcd]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("etcd")
    with running(cluster="hacv", citus=False, replicas=1, redis=False) as c:
        c.timeout = 180.0  # the conversion clones a standby on a shared machine
        yield c


def test_turning_ha_on_and_off_for_the_analytics_primary_keeps_its_data_and_replication(
        cluster: LocalCluster) -> None:
    c = cluster
    insert_users(c, "seed", 200)
    wait_until("the replica caught up", lambda: analytics_sums(c, REPLICA) == analytics_sums(c, PRIMARY), 90)
    sums, sysid = analytics_sums(c, PRIMARY), system_ids(c, (PRIMARY,))
    assert sums["users"][0] >= 200, sums

    ha = analytics_ha()
    ha["loop_wait"] = 2
    set_ha(c, ha)
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}[PRIMARY] == "recreate"
    assert system_ids(c, (PRIMARY,)) == sysid  # the same data directory leads, not a fresh initdb beside it
    assert analytics_sums(c, PRIMARY) == sums
    group = check_analytics_group(c, SLOT)  # led, a sync standby cloned from it, the slot permanent on both
    assert (c.backend.home.nodes / STANDBY / "data" / "PG_VERSION").exists()
    ports = ",".join(str(m.port) for m in group.members)
    sub, srv = replication_targets(c, SLOT)
    assert f"port={ports}" in sub and "target_session_attrs=primary" in sub, sub
    assert f"port={ports}" in srv and "target_session_attrs=primary" in srv, srv
    replication_flows(c, "after-ha-on")
    verify_passes(c, "ha,replication")
    assert analytics_sums(c, REPLICA) == analytics_sums(c, PRIMARY)

    sums = analytics_sums(c, PRIMARY)
    set_ha(c, None)
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}[PRIMARY] == "recreate"
    assert system_ids(c, (PRIMARY,)) == sysid and analytics_sums(c, PRIMARY) == sums
    home = c.backend.home
    assert not (home.nodes / STANDBY).exists() and not (home.path / "etcd").exists()
    assert not (home.nodes / PRIMARY / "patroni.yml").exists()
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (SLOT,)).fetchone() == (1,)  # the replica's slot kept
    assert physical_slots(c, PRIMARY) == []  # Patroni's for the standby, which would keep WAL for ever
    sub, srv = replication_targets(c, SLOT)
    assert "target_session_attrs" not in sub and "target_session_attrs" not in srv, (sub, srv)
    replication_flows(c, "after-ha-off")
    verify_passes(c, "replication")
    assert c.up().changed is False
