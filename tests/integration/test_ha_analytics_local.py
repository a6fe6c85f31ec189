"""The analytics primary under HA on the local backend (#27): a plain Patroni cluster (Citus off here, so the
cluster stays small) with a synchronous standby, one logical replica whose slot is Patroni's permanent logical
slot, and the coordinator's FDW reading it. Its leader is killed (Patroni and PostgreSQL, SIGKILL) while rows
are inserted: the standby is promoted with the slot, the replica keeps receiving the rows inserted after the
failover, verify's checksums agree, and the FDW reads through the new leader.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from streamctl.names import subscription_name
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import (
    USER_INSERT,
    Writer,
    analytics_ha,
    check_analytics_group,
    ha_roles,
    kill_member,
    member_slots,
    user_ids,
    wait_until,
)

pytestmark = [pytest.mark.etcd]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("etcd")
    ha = analytics_ha()
    with running(cluster="haan", citus=False, replicas=1, redis=False, ha=ha) as c:
        yield c


def test_the_analytics_primary_is_led_and_its_replicas_slot_is_permanent(cluster: LocalCluster) -> None:
    c = cluster
    group = check_analytics_group(c, SLOT)  # led, with a sync standby; the slot permanent, on both members
    ports = ",".join(str(m.port) for m in group.members)
    with c.ctx.pg_connect(REPLICA, "analytics_db") as conn:
        (conninfo,) = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", (SLOT,)).fetchone()
    assert f"port={ports}" in conninfo and "target_session_attrs=primary" in conninfo, conninfo
    with c.ctx.pg_connect("coordinator") as conn:
        (options,) = conn.execute("SELECT srvoptions FROM pg_foreign_server").fetchone()
    assert f"port={ports}" in options and "target_session_attrs=primary" in options, options
    nodes = {n["name"]: n for n in c.cli.json("status")["nodes"]}
    assert [(m["name"], m["group"]) for m in nodes[PRIMARY]["members"]] == [(PRIMARY, PRIMARY), (STANDBY, PRIMARY)]
    checks = c.cli.json("verify", "--only", "ha,replication")["checks"]
    assert {(r["check"], r["status"]) for r in checks} <= {(r["check"], "passed") for r in checks}, checks
    assert ("ha.groups", PRIMARY) in {(r["check"], r["target"]) for r in checks}


def test_a_killed_analytics_leader_fails_over_and_the_replica_keeps_receiving(cluster: LocalCluster) -> None:
    c = cluster
    if ha_roles(c, PRIMARY)[STANDBY] != "leader":  # the killed leader: the standby (the first keeps its pid file)
        done = c.cli.json("switchover", PRIMARY, "--to", STANDBY)  # switchover by the group's node name
        assert done["new_leader"] == STANDBY, done
    writer = Writer(c.ctx.pg_conninfo(PRIMARY, "analytics_db"), "-ha", USER_INSERT)
    writer.start()
    try:
        wait_until("the writer's first inserts", lambda: len(writer.acked) >= 10, 30)
        kill_member(c.backend.home.nodes / STANDBY)
        killed_at = time.monotonic()
        wait_until("inserts failing on the lost leader", lambda: writer.failed > 0, 30)
        wait_until("the first member promoted", lambda: ha_roles(c, PRIMARY).get(PRIMARY) == "leader")
        wait_until("20 inserts in a row on the new leader", lambda: writer.streak >= 20, 60)
    finally:
        writer.stop.set()
        writer.join(10)
    after = {cid for cid, at in zip(writer.acked, writer.acked_at, strict=True) if at > killed_at}
    assert len(after) >= 20
    on_leader = user_ids(c, PRIMARY)
    assert set(writer.acked) <= on_leader, f"{len(set(writer.acked) - on_leader)} acknowledged inserts lost"
    assert SLOT in member_slots(c, PRIMARY, PRIMARY)  # the promoted standby had the permanent slot
    wait_until("the replica receiving the rows inserted after the failover",
               lambda: user_ids(c, REPLICA) == on_leader, 90)
    checks = c.cli.json("verify", "--only", "replication.data,replication.subscription")["checks"]
    assert checks and all(r["status"] == "passed" for r in checks), checks
    with c.ctx.pg_connect("coordinator") as conn:  # the FDW reads through the new leader
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (len(on_leader),)

    # `up` brings the killed member back as a standby, with the slot, and converges
    c.up()
    wait_until("the old leader streaming again",
               lambda: ha_roles(c, PRIMARY) == {PRIMARY: "leader", STANDBY: "sync_standby"})
    assert SLOT in member_slots(c, PRIMARY, STANDBY)
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,replication")["checks"]} == {"passed"}
