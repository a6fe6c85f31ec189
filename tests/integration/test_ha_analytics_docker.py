"""The analytics primary under HA on the Docker backend (#27): a plain Patroni cluster of two member containers
(the HA member image streamctl builds from the analytics node's image) with a synchronous standby, one logical
replica whose slot is Patroni's permanent logical slot, and the coordinator's FDW (Citus off: the smallest
cluster), both naming the members by their names on the cluster network. The leader's container is `docker
kill`ed while users are inserted: the standby is promoted with the slot, no acknowledged insert is lost, the
replica keeps receiving rows inserted after the failover without an `up`, verify's checksums agree; `up` then
starts the killed member's container again and it rejoins as a standby with the slot. A change of the members'
definition replaces their containers one at a time, the standby first, the leader after a switchover.

One cluster for the module."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from streamctl.names import subscription_name
from tests.support import ha as hs
from tests.support.cluster import running, topology_dict
from tests.support.docker import DockerCluster, docker_client, unique_cluster, use_image
from tests.support.images import ensure_test_image

pytestmark = [pytest.mark.docker]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    ha = hs.analytics_ha()
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=False, replicas=1,
                                   redis=False, ha=ha), ensure_test_image())
    with running(DockerCluster, data) as c:
        yield c


def test_the_analytics_group_runs_in_containers_and_its_clients_name_the_members(cluster: DockerCluster) -> None:
    c = cluster
    group = hs.check_analytics_group(c, SLOT)  # led, with a sync standby; the slot permanent, on both members
    client = docker_client()
    try:
        for m in group.members:
            labels = client.containers.get(f"{c.cluster}-{m.name}").labels
            assert labels["io.streamctl.ha"] == "member", labels
        assert client.containers.get(f"{c.cluster}-etcd-1").status == "running"
    finally:
        client.close()
    names = f"host={PRIMARY},{STANDBY} port=5432,5432"  # their names on the cluster network, as the replica sees them
    with c.ctx.pg_connect(REPLICA, "analytics_db") as conn:
        (conninfo,) = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", (SLOT,)).fetchone()
    assert names in conninfo and "target_session_attrs=primary" in conninfo, conninfo
    with c.ctx.pg_connect("coordinator") as conn:
        (options,) = conn.execute("SELECT srvoptions FROM pg_foreign_server").fetchone()
    assert f"host={PRIMARY},{STANDBY}" in options and "port=5432,5432" in options, options
    assert "target_session_attrs=primary" in options, options
    nodes = {n["name"]: n for n in c.cli.json("status")["nodes"]}
    assert [(m["name"], m["group"]) for m in nodes[PRIMARY]["members"]] == [(PRIMARY, PRIMARY), (STANDBY, PRIMARY)]
    checks = c.cli.json("verify", "--only", "ha,replication,fdw")["checks"]
    assert {(r["check"], r["status"]) for r in checks} <= {(r["check"], "passed") for r in checks}, checks
    assert ("ha.groups", PRIMARY) in {(r["check"], r["target"]) for r in checks}
    assert c.up().changed is False  # a second `up` changes nothing


def test_a_killed_analytics_leader_container_fails_over_and_the_replica_keeps_receiving(
        cluster: DockerCluster) -> None:
    c = cluster
    old = next(n for n, role in hs.ha_roles(c, PRIMARY).items() if role == "leader")
    new = next(n for n, role in hs.ha_roles(c, PRIMARY).items() if role == "sync_standby")
    writer = hs.Writer(c.ctx.pg_conninfo(PRIMARY, "analytics_db"), "-ha", hs.USER_INSERT)
    writer.start()
    client = docker_client()
    try:
        hs.wait_until("the writer's first inserts", lambda: len(writer.acked) >= 10, 60)
        client.containers.get(f"{c.cluster}-{old}").kill()  # SIGKILL: Patroni and PostgreSQL at once
        killed_at = time.monotonic()
        hs.wait_until("inserts failing on the lost leader", lambda: writer.failed > 0, 60)
        hs.wait_until("the standby promoted", lambda: hs.ha_roles(c, PRIMARY).get(new) == "leader", 120)
        hs.wait_until("20 inserts in a row on the new leader", lambda: writer.streak >= 20, 90)
    finally:
        writer.stop.set()
        writer.join(10)
        client.close()
    after = [cid for cid, at in zip(writer.acked, writer.acked_at, strict=True) if at > killed_at]
    assert len(after) >= 20
    on_leader = hs.user_ids(c, PRIMARY)
    assert set(writer.acked) <= on_leader, \
        f"{len(set(writer.acked) - on_leader)} of {len(writer.acked)} acknowledged inserts lost"
    assert SLOT in hs.member_slots(c, PRIMARY, new)  # the promoted standby had the permanent slot
    hs.wait_until("the replica receiving the rows inserted after the failover",
                  lambda: hs.user_ids(c, REPLICA) == on_leader, 90)
    checks = c.cli.json("verify", "--only", "replication.data,replication.subscription")["checks"]
    assert checks and all(r["status"] == "passed" for r in checks), checks
    with c.ctx.pg_connect("coordinator") as conn:  # the FDW reads through the new leader, by its network name
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (len(on_leader),)
    status = c.cli.run("status", "--json")
    node = next(n for n in json.loads(status.stdout)["nodes"] if n["name"] == PRIMARY)
    assert status.returncode == 12 and node["state"] == "degraded", node
    assert {m["name"]: m["ha_role"] for m in node["members"]} == {new: "leader", old: None}

    # `up` starts the killed member's container again: it rejoins as a standby, with the slot
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}[PRIMARY] == "start"
    hs.wait_until("the old leader streaming again",
                  lambda: hs.ha_roles(c, PRIMARY) == {new: "leader", old: "sync_standby"}, 120)
    hs.wait_until("the slot on the old leader again", lambda: SLOT in hs.member_slots(c, PRIMARY, old), 60)
    checks = c.cli.json("verify", "--only", "ha,replication")["checks"]
    assert {r["status"] for r in checks} == {"passed"}, checks

    # a forced failover back (`failover`, by the group's node name): the replica follows it too
    done = c.cli.json("failover", PRIMARY, "--to", old, "--yes")
    assert done["new_leader"] == old, done
    assert c.cli.sql(PRIMARY, "SELECT pg_is_in_recovery()") == "f"  # psql runs in the leader's container
    row = str(uuid.uuid4())
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        conn.execute(hs.USER_INSERT, {"id": row, "title": "-after"})
    hs.wait_until("the replica receiving the row inserted after the forced failover",
                  lambda: row in hs.user_ids(c, REPLICA) and hs.user_ids(c, REPLICA) == hs.user_ids(c, PRIMARY), 90)


def test_a_changed_definition_replaces_the_containers_one_at_a_time_the_leader_last(cluster: DockerCluster) -> None:
    c = cluster
    client = docker_client()
    try:
        hs.rolling_restart(c, lambda: {m.name: client.containers.get(f"{c.cluster}-{m.name}").id
                                       for m in hs.group_of(c, PRIMARY).members})
    finally:
        client.close()
