"""The analytics primary under HA on the local backend (#27): a plain Patroni cluster (Citus off here, so the
cluster stays small) with a synchronous standby, one logical replica whose slot is Patroni's permanent logical
slot, and the coordinator's FDW reading it. Its leader is killed (Patroni and PostgreSQL, SIGKILL) while rows
are inserted: the standby is promoted with the slot, the replica keeps receiving the rows inserted after the
failover, verify's checksums agree, and the FDW reads through the new leader.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from streamctl.config.members import Group, ha_groups
from streamctl.engines import postgres as pg_engine
from streamctl.ha import analytics, rest
from streamctl.names import subscription_name
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import Writer, kill_member
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.etcd]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)
USER_INSERT = ("INSERT INTO users (user_id, username, email) "
               "VALUES (%(id)s::uuid, %(id)s::text || %(title)s::text, %(id)s::text || '@example.org')")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("etcd")
    etcd = free_port_run(2)
    ha = {"analytics": {"standbys": 1}, "synchronous": "on", "port": free_port_run(1),
          "rest_port": free_port_run(2), "etcd": {"port": etcd, "peer_port": etcd + 1}}
    with running(cluster="haan", citus=False, replicas=1, redis=False, ha=ha) as c:
        yield c


def _group(c: LocalCluster) -> Group:
    return next(g for g in ha_groups(c.topology) if g.node.name == PRIMARY)


def _ca(c: LocalCluster) -> str | None:
    return c.ctx.ca_path() if c.ctx.tls_on else None


def _roles(c: LocalCluster) -> dict[str, str]:
    return {s.name: s.ha_role for s in rest.group_members(_group(c).members, _ca(c))}


def _wait(what: str, done, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.5)


def _users(c: LocalCluster, node: str) -> set[str]:
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        return {str(r[0]) for r in conn.execute("SELECT user_id FROM users")}


def _member_slots(c: LocalCluster, name: str) -> set[str]:
    """The logical slots of one member, asked of it alone (a standby too)."""
    member = next(m for m in _group(c).members if m.name == name)
    dsn = pg_engine.uri(member.node.host, member.port, "analytics_db", c.topology.pg_user,
                        c.ctx.secrets["postgres_password"], c.ctx.pg_ssl(target=PRIMARY))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'")}


def test_the_analytics_primary_is_led_and_its_replicas_slot_is_permanent(cluster: LocalCluster) -> None:
    c = cluster
    group = _group(c)
    assert not group.citus and [m.name for m in group.members] == [PRIMARY, STANDBY]
    assert sorted(_roles(c).values()) == ["leader", "sync_standby"]
    assert analytics.declared_slots(group, _ca(c)) == {SLOT: analytics.slot_spec(c.topology)}
    assert SLOT in _member_slots(c, STANDBY) and SLOT in _member_slots(c, PRIMARY)  # Patroni's copy on the standby
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
    if _roles(c)[STANDBY] != "leader":  # the killed leader is the standby member (the first keeps its pid file)
        done = c.cli.json("switchover", PRIMARY, "--to", STANDBY)  # switchover by the group's node name
        assert done["new_leader"] == STANDBY, done
    writer = Writer(c.ctx.pg_conninfo(PRIMARY, "analytics_db"), "-ha", USER_INSERT)
    writer.start()
    try:
        _wait("the writer's first inserts", lambda: len(writer.acked) >= 10, 30)
        kill_member(c.backend.home.nodes / STANDBY)
        killed_at = time.monotonic()
        _wait("inserts failing on the lost leader", lambda: writer.failed > 0, 30)
        _wait("the first member promoted", lambda: _roles(c).get(PRIMARY) == "leader")
        _wait("20 inserts in a row on the new leader", lambda: writer.streak >= 20, 60)
    finally:
        writer.stop.set()
        writer.join(10)
    after = {cid for cid, at in zip(writer.acked, writer.acked_at, strict=True) if at > killed_at}
    assert len(after) >= 20
    on_leader = _users(c, PRIMARY)
    assert set(writer.acked) <= on_leader, f"{len(set(writer.acked) - on_leader)} acknowledged inserts lost"
    assert SLOT in _member_slots(c, PRIMARY)  # the promoted standby had the permanent slot
    _wait("the replica receiving the rows inserted after the failover", lambda: _users(c, REPLICA) == on_leader, 90)
    checks = c.cli.json("verify", "--only", "replication.data,replication.subscription")["checks"]
    assert checks and all(r["status"] == "passed" for r in checks), checks
    with c.ctx.pg_connect("coordinator") as conn:  # the FDW reads through the new leader
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (len(on_leader),)

    # `up` brings the killed member back as a standby, with the slot, and converges
    c.up()
    _wait("the old leader streaming again", lambda: _roles(c) == {PRIMARY: "leader", STANDBY: "sync_standby"})
    assert SLOT in _member_slots(c, STANDBY)
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,replication")["checks"]} == {"passed"}
