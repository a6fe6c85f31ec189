"""The analytics primary under HA on the Docker backend (#27): a plain Patroni cluster of two member containers
(the HA member image streamctl builds from the analytics node's image) with a synchronous standby, one logical
replica whose slot is Patroni's permanent logical slot, and the coordinator's FDW (Citus off: the smallest
cluster), both naming the members by their names on the cluster network. The leader's container is `docker
kill`ed while users are inserted: the standby is promoted with the slot, no acknowledged insert is lost, the
replica keeps receiving rows inserted after the failover without an `up`, verify's checksums agree; `up` then
starts the killed member's container again and it rejoins as a standby with the slot.

One cluster for the module."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from streamctl.config.members import Group, ha_groups
from streamctl.engines import postgres as pg_engine
from streamctl.ha import analytics, rest
from streamctl.names import subscription_name
from tests.support.cluster import topology_dict
from tests.support.docker import DockerCluster, docker_client, unique_cluster, use_image
from tests.support.ha import Writer, wait_until
from tests.support.images import ensure_test_image
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.docker]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)
USER_INSERT = ("INSERT INTO users (user_id, username, email) "
               "VALUES (%(id)s::uuid, %(id)s::text || %(title)s::text, %(id)s::text || '@example.org')")


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    etcd = free_port_run(2)
    ha = {"analytics": {"standbys": 1}, "synchronous": "on", "port": free_port_run(1),
          "rest_port": free_port_run(2), "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=False, replicas=1,
                                   redis=False, ha=ha), ensure_test_image())
    c = DockerCluster.new(data)
    try:
        c.up()
        yield c
    finally:
        c.destroy()


def _group(c: DockerCluster) -> Group:
    return next(g for g in ha_groups(c.topology) if g.node.name == PRIMARY)


def _ca(c: DockerCluster) -> str | None:
    return c.ctx.ca_path() if c.ctx.tls_on else None


def _roles(c: DockerCluster) -> dict[str, str]:
    return {s.name: s.ha_role for s in rest.group_members(_group(c).members, _ca(c))}


def _users(c: DockerCluster, node: str) -> set[str]:
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        return {str(r[0]) for r in conn.execute("SELECT user_id FROM users")}


def _member_slots(c: DockerCluster, name: str) -> set[str]:
    """The logical slots of one member, asked of it alone (a standby too), on its published port."""
    member = next(m for m in _group(c).members if m.name == name)
    dsn = pg_engine.uri(member.node.host, member.port, "analytics_db", c.topology.pg_user,
                        c.ctx.secrets["postgres_password"], c.ctx.pg_ssl(target=PRIMARY))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'")}


def test_the_analytics_group_runs_in_containers_and_its_clients_name_the_members(cluster: DockerCluster) -> None:
    c = cluster
    group = _group(c)
    assert not group.citus and [m.name for m in group.members] == [PRIMARY, STANDBY]
    assert sorted(_roles(c).values()) == ["leader", "sync_standby"]
    client = docker_client()
    try:
        for m in group.members:
            labels = client.containers.get(f"{c.cluster}-{m.name}").labels
            assert labels["io.streamctl.ha"] == "member", labels
        assert client.containers.get(f"{c.cluster}-etcd-1").status == "running"
    finally:
        client.close()
    assert analytics.declared_slots(group, _ca(c)) == {SLOT: analytics.slot_spec(c.topology)}
    assert SLOT in _member_slots(c, STANDBY) and SLOT in _member_slots(c, PRIMARY)  # Patroni's copy on the standby
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
    old = next(n for n, role in _roles(c).items() if role == "leader")
    new = next(n for n, role in _roles(c).items() if role == "sync_standby")
    writer = Writer(c.ctx.pg_conninfo(PRIMARY, "analytics_db"), "-ha", USER_INSERT)
    writer.start()
    client = docker_client()
    try:
        wait_until("the writer's first inserts", lambda: len(writer.acked) >= 10, 60)
        client.containers.get(f"{c.cluster}-{old}").kill()  # SIGKILL: Patroni and PostgreSQL at once
        killed_at = time.monotonic()
        wait_until("inserts failing on the lost leader", lambda: writer.failed > 0, 60)
        wait_until("the standby promoted", lambda: _roles(c).get(new) == "leader", 120)
        wait_until("20 inserts in a row on the new leader", lambda: writer.streak >= 20, 90)
    finally:
        writer.stop.set()
        writer.join(10)
        client.close()
    after = [cid for cid, at in zip(writer.acked, writer.acked_at, strict=True) if at > killed_at]
    assert len(after) >= 20
    on_leader = _users(c, PRIMARY)
    assert set(writer.acked) <= on_leader, \
        f"{len(set(writer.acked) - on_leader)} of {len(writer.acked)} acknowledged inserts lost"
    assert SLOT in _member_slots(c, new)  # the promoted standby had the permanent slot
    wait_until("the replica receiving the rows inserted after the failover",
               lambda: _users(c, REPLICA) == on_leader, 90)
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
    wait_until("the old leader streaming again", lambda: _roles(c) == {new: "leader", old: "sync_standby"}, 120)
    wait_until("the slot on the old leader again", lambda: SLOT in _member_slots(c, old), 60)
    checks = c.cli.json("verify", "--only", "ha,replication")["checks"]
    assert {r["status"] for r in checks} == {"passed"}, checks

    # a forced failover back (`failover`, by the group's node name): the replica follows it too
    done = c.cli.json("failover", PRIMARY, "--to", old, "--yes")
    assert done["new_leader"] == old, done
    assert c.cli.sql(PRIMARY, "SELECT pg_is_in_recovery()") == "f"  # psql runs in the leader's container
    row = str(uuid.uuid4())
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        conn.execute(USER_INSERT, {"id": row, "title": "-after"})
    wait_until("the replica receiving the row inserted after the forced failover",
               lambda: row in _users(c, REPLICA) and _users(c, REPLICA) == _users(c, PRIMARY), 90)
