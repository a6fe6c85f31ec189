"""The analytics primary under HA on the local backend (#27): a plain Patroni cluster (Citus off here, so the
cluster stays small) with a synchronous standby, one logical replica whose slot is Patroni's permanent logical
slot, and the coordinator's FDW reading it. Its leader is killed (Patroni and PostgreSQL, SIGKILL) while rows
are inserted: the standby is promoted with the slot, the replica keeps receiving the rows inserted after the
failover, verify's checksums agree, and the FDW reads through the new leader. A setting the topology changes
later reaches every member through the group's dynamic configuration (no member made again), and one that needs
a restart is restarted by Patroni, the standby first. A change of the members' definition restarts them one
at a time, the standby first and the leader after a switchover, while rows are written.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets
from streamctl.names import subscription_name
from streamctl.services.ha import DCS_STEP
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import (
    USER_INSERT,
    Writer,
    analytics_ha,
    check_analytics_group,
    group_of,
    ha_roles,
    insert_users,
    kill_member,
    member_login,
    member_slots,
    pids,
    rolling_restart,
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


def _shown(c: LocalCluster, setting: str) -> dict[str, str]:
    group = group_of(c, PRIMARY)
    out = {}
    for m in group.members:
        with member_login(c, group, m, c.ctx.secrets["postgres_password"]) as conn:
            out[m.name] = str(conn.execute(f"SHOW {setting}").fetchone()[0])  # noqa: S608 - a known name
    return out


def test_a_changed_setting_reaches_every_member_and_one_needing_a_restart_is_restarted(cluster: LocalCluster) -> None:
    """Patroni reads its file's bootstrap parameters only when it bootstraps a group: `up` changes the group's
    dynamic configuration instead (a reload: no member made again, no PostgreSQL restarted). A parameter that
    needs a restart (here one an operator changed in the group's configuration and restarted for, as a group an
    earlier release's standby bootstrapped ran without the node's settings) is set back and restarted by
    Patroni, the standby first, the leader last: every member runs the topology's value, none pending, the
    group led with its sync standby and the replica still receiving."""
    c = cluster
    group = group_of(c, PRIMARY)
    ca = c.ctx.ca_path() if c.ctx.tls_on else None
    password = ha_secrets(c.ctx.store.root)["rest_password"]
    before = {m.name: pids(c.backend.home.nodes / m.name) for m in group.members}
    assert set(_shown(c, "max_slot_wal_keep_size").values()) == {"4GB"}

    c.edit(lambda d: d["analytics"].update(max_slot_wal_keep_size="6GB"))
    done = c.up()
    assert {s.action.value for s in done.node_steps if s.node.name == PRIMARY} <= {"noop"}, done.node_steps
    assert any(step == DCS_STEP and "postgresql.parameters.max_slot_wal_keep_size 6GB in Patroni's configuration"
               in changes for _, step, changes in done.config_changes), done.config_changes
    assert _shown(c, "max_slot_wal_keep_size") == {m.name: "6GB" for m in group.members}
    assert {m.name: pids(c.backend.home.nodes / m.name) for m in group.members} == before  # a reload only

    # max_logical_replication_workers (a restart) changed by hand and restarted for: the topology says 8
    setting = "max_logical_replication_workers"
    assert rest.patch_config(group.members, {"postgresql": {"parameters": {setting: "6"}}}, password, ca)[0] == 200
    wait_until("both members pending a restart", lambda: all(
        rest.get(m, "/patroni", ca).get("pending_restart") for m in group.members), 60)
    for m in group.members:
        assert rest.post(m, "/restart", {"restart_pending": True}, password, ca, timeout=120)[0] == 200, m.name
        wait_until(f"{m.name} back", lambda: sorted(ha_roles(c, PRIMARY).values()) == ["leader", "sync_standby"], 90)
    assert set(_shown(c, setting).values()) == {"6"}
    started = {m.name: rest.get(m, "/patroni", ca)["postmaster_start_time"] for m in group.members}

    done = c.up()
    changes = [ch for _, step, chs in done.config_changes if step == DCS_STEP for ch in chs]
    assert f"postgresql.parameters.{setting} 8 in Patroni's configuration" in changes, changes
    assert _shown(c, setting) == {m.name: "8" for m in group.members}
    states = {m.name: rest.get(m, "/patroni", ca) for m in group.members}
    assert not any(s.get("pending_restart") for s in states.values()), states
    roles = ha_roles(c, PRIMARY)
    leader = next(n for n, r in roles.items() if r == "leader")
    standby = next(n for n in roles if n != leader)
    restarted = {n: s["postmaster_start_time"] for n, s in states.items()}
    assert all(restarted[n] > started[n] for n in started), (started, restarted)
    assert restarted[standby] < restarted[leader], restarted  # the standby first, the leader last
    assert {m.name: pids(c.backend.home.nodes / m.name)[0] for m in group.members} == {
        n: p[0] for n, p in before.items()}  # the same Patroni processes: PostgreSQL alone restarted
    assert sorted(roles.values()) == ["leader", "sync_standby"]
    insert_users(c, "-after-restart", 5)
    wait_until("the replica receiving after the restarts", lambda: user_ids(c, REPLICA) == user_ids(c, PRIMARY), 60)
    again = c.up()  # nothing left to change
    assert not [ch for _, step, chs in again.config_changes if step == DCS_STEP for ch in chs], again.config_changes
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,replication")["checks"]} == {"passed"}


def test_a_changed_definition_restarts_the_members_one_at_a_time_the_leader_last(cluster: LocalCluster) -> None:
    """`ha.loop_wait` is in every member's Patroni configuration: changing it makes the members again (their
    Patroni restarted on the new file), one at a time while users are inserted (tests/support/ha.py)."""
    c = cluster
    rolling_restart(c, lambda: {m.name: str(pids(c.backend.home.nodes / m.name)[0])
                                for m in group_of(c, PRIMARY).members})
