"""High availability on the local backend (#27): each Citus group a Patroni leader and a synchronous standby,
etcd as the DCS. A worker group's leader is killed (its Patroni and its PostgreSQL, SIGKILL) while a writer
inserts through the coordinator: its standby is promoted, writes work again, pg_dist_node names the new
leader, and every insert acknowledged is there. `up` then brings the killed member back as a standby. A former
leader whose WAL diverged and cannot be rewound is cloned again by its own Patroni. `streamctl failover` forces
a worker group's lead onto its standby with every row kept. Every group's dynamic configuration holds `ha:`'s
settings, whichever member bootstrapped it.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from streamctl.config.members import Group, ha_groups
from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets
from tests.support.cluster import LocalCluster, running
from tests.support.dashboard import Cells, dump_dom
from tests.support.engines import require
from tests.support.gateway import serve
from tests.support.ha import (
    Writer,
    dcs_keys,
    kill_member,
    member_login,
    pids,
    rotate_ha_passwords,
    rotate_superuser,
    wait_until,
)
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.citus, pytest.mark.redis, pytest.mark.etcd]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("citus", "redis", "etcd")
    etcd = free_port_run(2)
    ha = {"standbys": 1, "synchronous": "on", "port": free_port_run(4), "rest_port": free_port_run(8),  # room to scale
          "etcd": {"port": etcd, "peer_port": etcd + 1}}
    with running(cluster="ha", citus=True, workers=2, replicas=1, ha=ha) as c:
        c.timeout = 120.0  # a killed member's rejoin (pg_rewind, then a sync standby again) on a shared machine
        yield c


def _group(c: LocalCluster, name: str) -> Group:
    return next(g for g in ha_groups(c.topology) if g.node.name == name)


def _ca(c: LocalCluster) -> str | None:
    return c.ctx.ca_path() if c.ctx.tls_on else None


def _roles(c: LocalCluster, name: str) -> dict[str, str]:
    return {s.name: s.ha_role for s in rest.group_members(_group(c, name).members, _ca(c))}


def _registered_primary(c: LocalCluster, group: int) -> int:
    with c.ctx.pg_connect("coordinator") as conn:
        row = conn.execute("SELECT nodeport FROM pg_dist_node WHERE groupid = %s AND noderole = 'primary'",
                           (group,)).fetchone()
    assert row is not None
    return int(row[0])


def test_every_group_has_a_leader_and_a_sync_standby_registered_by_patroni(cluster: LocalCluster) -> None:
    c = cluster
    for g in ha_groups(c.topology):
        roles = _roles(c, g.node.name)
        assert sorted(roles.values()) == ["leader", "sync_standby"], (g.node.name, roles)
        leader = next(m for m in g.members if roles[m.name] == "leader")
        assert _registered_primary(c, g.number) == leader.port
        # the group's dynamic configuration holds `ha:`'s timing and pg_rewind, whichever member bootstrapped it
        # (Patroni's Citus mode lets any: without `up` keeping them, a group had Patroni's defaults, ttl 30)
        config = rest.dynamic_config(g.members, _ca(c))
        assert (config.get("ttl"), config.get("loop_wait"), config.get("synchronous_mode")) == (
            c.topology.ha.ttl, c.topology.ha.loop_wait, True), (g.node.name, config)
        assert config.get("postgresql", {}).get("use_pg_rewind") is True, (g.node.name, config)
    # no group ran initdb: each leader's data is a copy of the machine's template (one system identifier for
    # all; initdb makes a new one every run), Patroni's roles made in it before Patroni first started
    sysids = set()
    for g in ha_groups(c.topology):
        with c.ctx.pg_connect(g.node.name) as conn:
            sysids.add(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone())
    assert len(sysids) == 1, sysids
    with c.ctx.pg_connect("coordinator") as conn:  # the coordinator's own connection: its leader, read-write
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    assert "target_session_attrs=primary" in c.ctx.pg_conninfo("coordinator")
    checks = c.cli.json("verify", "--only", "ha,citus.workers")["checks"]
    assert {(r["check"], r["target"]): r["status"] for r in checks} == {
        **{("ha.groups", g.node.name): "passed" for g in ha_groups(c.topology)},
        ("citus.workers", "worker-1"): "passed", ("citus.workers", "worker-2"): "passed"}, checks


def test_verify_reads_each_standbys_lag_on_its_leader_now(cluster: LocalCluster) -> None:
    """Patroni's REST API reports WAL positions up to a loop old, so a leader that just switched segments (16 MB
    further, as `pgbackrest check` does after `up`) once made verify see a standby "behind". verify reads the lag
    on the leader, now: it passes right after the switches; with the standby's replay paused it names the standby
    and its byte count, and passes again once the standby replays."""
    c = cluster
    group = _group(c, "worker-1")
    roles = _roles(c, "worker-1")
    standby = next(m for m in group.members if roles[m.name] != "leader")

    def switch_segments(times: int) -> None:
        with c.ctx.pg_connect("worker-1") as conn:
            for _ in range(times):
                conn.execute("SELECT pg_logical_emit_message(false, 'streamctl-test', 'lag probe')")
                conn.execute("SELECT pg_switch_wal()")

    def ha_check() -> tuple[int, dict[str, str]]:
        done = c.cli.run("verify", "--only", "ha", "--json")
        return done.returncode, {r["target"]: r["detail"] for r in json.loads(done.stdout)["checks"]}

    switch_segments(3)
    code, details = ha_check()
    assert code == 0, details
    password = c.ctx.secrets["postgres_password"]
    # Patroni resumes a paused replay in its next loop (PostgreSQL 14+), unless the group is in maintenance mode
    rest_password = ha_secrets(c.ctx.store.root)["rest_password"]
    assert rest.patch_config(group.members, {"pause": True}, rest_password, _ca(c))[0] == 200
    with member_login(c, group, standby, password) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        switch_segments(3)  # at least 2 x 16 MB the paused standby has received but not replayed
        seen: list[tuple[int, dict[str, str]]] = []

        def named() -> bool:  # the standby's replay position reaches the leader with its next reply
            seen.append(ha_check())
            return seen[-1][0] == 8
        try:
            wait_until("verify naming the paused standby", named, 30.0)
        except AssertionError:
            raise AssertionError(seen[-1]) from None
        details = seen[-1][1]
        behind = re.search(rf"{standby.name} \((\d+) bytes behind\)", details["worker-1"])
        assert behind is not None and int(behind.group(1)) > c.topology.verify.max_lag_bytes, details
    finally:
        with member_login(c, group, standby, password) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        assert rest.patch_config(group.members, {"pause": None}, rest_password, _ca(c))[0] == 200
    wait_until("verify passing once the standby replays", lambda: ha_check()[0] == 0, 30.0)


def test_the_gateway_role_and_the_fdw_work_through_citus(cluster: LocalCluster) -> None:
    """The gateway's role reads distributed tables (its credentials on every node) and the FDW answers."""
    c = cluster
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) >= 0 FROM content_metadata").fetchone() == (True,)
        # a repartition join: the workers fetch from each other as the gateway (its authinfo on every node)
        conn.execute("SET citus.enable_repartition_joins TO on")
        assert conn.execute("SELECT count(*) FROM content_metadata a JOIN content_cast_crew b "
                            "ON a.title = b.role").fetchone() == (0,)
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) >= 0 FROM analytics.users").fetchone() == (True,)


def test_status_shows_every_member_and_a_switchover_hands_the_lead_over(cluster: LocalCluster) -> None:
    c = cluster
    nodes = {n["name"]: n for n in c.cli.json("status")["nodes"]}
    for g in ha_groups(c.topology):
        members = nodes[g.node.name]["members"]
        assert [m["name"] for m in members] == [m.name for m in g.members]
        assert sorted(m["ha_role"] for m in members) == ["leader", "sync_standby"]
        assert all(m["group"] == g.number and m["timeline"] >= 1 for m in members), members

    def caught_up() -> bool:  # Patroni's members report their position once a loop: lag is 0 within one
        rows = {n["name"]: n for n in c.cli.json("status")["nodes"]}
        return all(m["lag_bytes"] == 0 for g in ha_groups(c.topology) for m in rows[g.node.name]["members"])

    wait_until("every standby's lag reported as 0 by status", caught_up, 30.0)
    group = _group(c, "worker-2")
    standby = next(name for name, role in _roles(c, "worker-2").items() if role == "sync_standby")
    done = c.cli.json("switchover", "worker-2", "--to", standby)
    assert done["new_leader"] == standby and done["leader"] != standby
    assert _roles(c, "worker-2")[standby] == "leader"
    assert _registered_primary(c, group.number) == next(m.port for m in group.members if m.name == standby)
    assert c.cli.sql("worker-2", "SELECT pg_is_in_recovery()") == "f"  # psql reaches the new leader
    assert c.cli.run("switchover", "worker-2", "--to", standby).returncode == 10  # it leads already


def _dashboard_members(url: str) -> dict[str, dict[str, str]]:
    """The dashboard's HA table as Chromium draws it: member -> its cells."""
    page = Cells()
    page.feed(dump_dom(url + "/"))
    assert int(page.body.get("data-refreshes", "0")) >= 1, "the dashboard never finished a refresh"
    assert "hidden" not in page.ids["ha-section"]
    return dict(page.tables["ha-members"])


@pytest.mark.chromium
def test_the_dashboard_shows_every_member_and_follows_a_switchover(cluster: LocalCluster) -> None:
    """The gateway's dashboard lists each group's members with role, state, timeline and lag as `status` does
    (both read Patroni's GET /cluster: the gateway holds no Patroni password), and shows the roles a switchover
    of the coordinator group hands over, the gateway serving throughout."""
    require("chromium")
    from streamctl.gateway.app import create_app

    c = cluster
    shown_role = {"leader": "leader", "sync_standby": "sync standby", "replica": "replica"}
    with serve(create_app(c.ctx)) as url:
        ha = httpx.get(url + "/api/v1/ops/ha", timeout=30).json()
        assert ha["enabled"] and [g["node"] for g in ha["groups"]] == [g.node.name for g in ha_groups(c.topology)]
        shown = _dashboard_members(url)
        nodes = {n["name"]: n for n in c.cli.json("status")["nodes"]}
        for g in ha_groups(c.topology):
            api = next(x for x in ha["groups"] if x["node"] == g.node.name)
            assert [m["name"] for m in api["members"]] == [m["name"] for m in nodes[g.node.name]["members"]]
            for m in nodes[g.node.name]["members"]:
                row = shown[m["name"]]
                assert (row["group"], row["member"], row["role"], row["state"], row["timeline"]) \
                    == (g.node.name, m["name"], shown_role[m["ha_role"]], m["state"], str(m["timeline"])), row
                # a byte count for every member ("–" when unknown): the page and `status` read moments apart, and a
                # standby may lag a few kB in one (14.1 kB once in CI) and not in the other
                assert re.fullmatch(r"\d+(\.\d+)? (B|kB|MB|GB)", row["lag-bytes"]), row

        roles = _roles(c, "coordinator")
        leader = next(n for n, r in roles.items() if r == "leader")
        standby = next(n for n, r in roles.items() if r == "sync_standby")
        assert (shown[leader]["role"], shown[standby]["role"]) == ("leader", "sync standby")
        c.cli.ok("switchover", "coordinator", "--to", standby)
        after = _dashboard_members(url)
        assert (after[standby]["role"], after[standby]["state"]) == ("leader", "running"), after
        assert (after[leader]["role"], after[leader]["state"]) == ("sync standby", "streaming"), after
        assert int(after[standby]["timeline"]) > int(shown[standby]["timeline"]), after
        assert httpx.get(url + "/health", timeout=30).status_code == 200  # the gateway reached the new leader
    c.cli.ok("switchover", "coordinator", "--to", leader)  # the first member leads again, as the tests below expect


def test_a_killed_worker_leader_fails_over_without_losing_an_acknowledged_write(cluster: LocalCluster) -> None:
    c = cluster
    group = _group(c, "worker-1")
    old, standby = group.members[1], group.members[0]
    if _roles(c, "worker-1")[old.name] != "leader":  # the killed leader is a standby member: the first member,
        c.cli.ok("switchover", "worker-1", "--to", old.name)  # still running, keeps its own pid file
    writer = Writer(c.ctx.pg_conninfo("coordinator"))
    writer.start()
    try:
        wait_until("the writer's first inserts", lambda: len(writer.acked) >= 10, 30)
        kill_member(c.backend.home.nodes / old.name)
        wait_until("inserts failing on the lost worker", lambda: writer.failed > 0, 30)
        wait_until("a standby promoted", lambda: _roles(c, "worker-1").get(standby.name) == "leader")
        wait_until("pg_dist_node naming the new leader", lambda: _registered_primary(c, group.number) == standby.port)
        wait_until("20 inserts in a row through the coordinator again", lambda: writer.streak >= 20, 60)
    finally:
        writer.stop.set()
        writer.join(10)
    with c.ctx.pg_connect("coordinator") as conn:
        present = {str(r[0]) for r in conn.execute("SELECT content_id FROM content_metadata WHERE title = 'ha'")}
    assert set(writer.acked) <= present, f"{len(set(writer.acked) - present)} acknowledged inserts lost"
    status = c.cli.run("status", "--json")
    worker = next(n for n in json.loads(status.stdout)["nodes"] if n["name"] == "worker-1")
    assert status.returncode == 12 and worker["state"] == "degraded", worker
    assert "1 of 2 members' Patroni running" in worker["detail"], worker
    assert {m["name"]: m["ha_role"] for m in worker["members"]} == {standby.name: "leader", old.name: None}

    # `up` brings the killed member back: it rejoins as a standby of the new leader (pg_rewind by Patroni)
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}["worker-1"] == "start"
    wait_until("the old leader streaming again", lambda: _roles(c, "worker-1") == {standby.name: "leader",
                                                                               old.name: "sync_standby"})

    def registered() -> list[tuple[int, str]]:
        with c.ctx.pg_connect("coordinator") as conn:
            return conn.execute("SELECT nodeport, noderole::text FROM pg_dist_node WHERE groupid = %s ORDER BY 2",
                                (group.number,)).fetchall()

    wait_until("the old leader registered as a secondary",  # Patroni adds it once it streams
          lambda: registered() == [(standby.port, "primary"), (old.port, "secondary")], 30)
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,citus")["checks"]} <= {"passed", "skipped"}
    assert c.up().changed is False  # the new password is no change of definition: no member restarted
    assert c.up().changed is False  # and `up` is idempotent again


def test_a_former_leader_whose_rewind_fails_is_cloned_again_by_its_patroni(cluster: LocalCluster) -> None:
    """What a frozen Swarm host's returning leader met (README, "A host that freezes and comes back"), played on
    one machine: the leader's Patroni dies, its PostgreSQL goes on as a primary past the standby's promotion (its
    WAL diverges), then stops; the segment holding the fork point is gone, so pg_rewind cannot find the record
    there. Its Patroni, started again by `up`, fails the rewind and (remove_data_directory_on_rewind_failure,
    which `up` keeps on) clones the member again from the new leader: a sync standby on the new timeline, no row
    the group acknowledged lost."""
    c = cluster
    group = _group(c, "worker-1")
    roles = _roles(c, "worker-1")
    old = next(m for m in group.members if roles[m.name] == "leader")
    new = next(m for m in group.members if m is not old)
    password = c.ctx.secrets["postgres_password"]
    with c.ctx.pg_connect("coordinator") as conn:
        before = conn.execute("SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata").fetchone()
    patroni, postmaster = pids(c.backend.home.nodes / old.name)
    os.kill(patroni, signal.SIGKILL)  # its PostgreSQL runs on, a primary nobody leads
    wait_until(f"{new.name} promoted", lambda: _roles(c, "worker-1").get(new.name) == "leader", 90)
    timeline = next(s.timeline for s in rest.group_members(group.members, _ca(c)) if s.name == new.name)
    with member_login(c, group, new, password) as conn:  # the history of its new timeline: where the old one ended
        history = conn.execute("SELECT pg_read_file(%s)", (f"pg_wal/{timeline:08X}.history",)).fetchone()[0]
        segment_size = int(conn.execute("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"
                                        ).fetchone()[0])
    tli, fork = history.strip().splitlines()[-1].split("\t")[:2]  # the old timeline and where it ended
    hi, lo = (int(x, 16) for x in fork.split("/"))
    with member_login(c, group, old, password) as conn:  # the old leader's own WAL goes past the fork
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        for _ in range(3):
            conn.execute("SELECT pg_logical_emit_message(false, 'streamctl-test', repeat('x', 1000))")
            conn.execute("SELECT pg_switch_wal()")
        conn.execute("CHECKPOINT")
        last = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()[0]
    os.kill(postmaster, signal.SIGINT)  # a fast, clean shutdown: its checkpoint goes into segment `last`
    wal = c.backend.home.nodes / old.name / "data" / "pg_wal"
    wait_until("the old leader's PostgreSQL stopped", lambda: not (wal.parent / "postmaster.pid").exists(), 60)
    # Every segment before the shutdown checkpoint's is gone, the fork point's among them: pg_rewind, which reads
    # the record there first, cannot find it (PostgreSQL itself needs only the checkpoint's, the shutdown clean).
    fork_segment = f"{hi:08X}{lo // segment_size:08X}"
    gone = [f for f in wal.iterdir() if re.fullmatch("[0-9A-F]{24}", f.name) and f.name[8:] < last[8:]]
    assert fork_segment in {f.name[8:] for f in gone}, (fork_segment, last, sorted(f.name for f in wal.iterdir()))
    for f in gone:
        f.unlink()

    c.up()  # starts its Patroni again
    wait_until(f"{old.name} cloned again, a sync standby", lambda: _roles(c, "worker-1") == {
        new.name: "leader", old.name: "sync_standby"}, 180)
    log = (c.backend.home.nodes / old.name / "log" / "patroni.log").read_text(errors="replace")
    said = "\n".join(line for line in log.splitlines() if re.search(
        "rewind|remov|timeline|basebackup|clone|bootstrap|replica|starting|WARNING|ERROR", line, re.I))
    assert "Failed to rewind from healthy primary" in log, said
    assert "remove_data_directory_on_rewind_failure is set. removing..." in log, said
    seen = {s.name: s.timeline for s in rest.group_members(group.members, _ca(c))}
    assert seen[old.name] == seen[new.name] > int(tli), seen
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata"
                            ).fetchone() == before
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,citus")["checks"]} <= {"passed", "skipped"}
    c.cli.ok("switchover", "worker-1", "--to", old.name)  # the member that led before leads again


def test_a_forced_failover_promotes_a_worker_standby_with_every_row(cluster: LocalCluster) -> None:
    """`failover` hands a healthy worker group's lead to its standby by force; refused without --yes and a
    terminal, and for a member the group does not have."""
    c = cluster
    group = _group(c, "worker-2")
    roles = _roles(c, "worker-2")
    leader = next(name for name, role in roles.items() if role == "leader")
    standby = next(name for name, role in roles.items() if role == "sync_standby")
    refused = c.cli.run("failover", "worker-2")
    assert refused.returncode == 10 and "--yes" in refused.stderr, refused.stderr
    assert c.cli.run("failover", "worker-2", "--to", "worker-9-9", "--yes").returncode == 7
    assert c.cli.run("failover", "worker-2", "--to", leader, "--yes").returncode == 10  # it leads already
    assert _roles(c, "worker-2") == roles  # nothing changed
    with c.ctx.pg_connect("coordinator") as conn:
        before = conn.execute("SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata").fetchone()

    done = c.cli.json("failover", "worker-2", "--yes")  # the candidate: its sync standby
    assert (done["leader"], done["new_leader"]) == (leader, standby) and done["seconds"] > 0, done
    assert _roles(c, "worker-2") == {leader: "sync_standby", standby: "leader"}  # the old leader rejoined
    wait_until("pg_dist_node naming the new leader",
          lambda: _registered_primary(c, group.number) == next(m.port for m in group.members if m.name == standby))
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata"
                            ).fetchone() == before
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, 'fo', 'movie')",
                     (str(uuid.uuid4()),))


def _states(c: LocalCluster, name: str) -> dict[str, str]:
    return {s.name: s.state for s in rest.group_members(_group(c, name).members, _ca(c))}


def test_reinit_clones_again_a_standby_whose_postgresql_no_longer_starts(cluster: LocalCluster) -> None:
    """A standby whose data directory no longer starts (on Swarm, an old leader whose pg_rewind its replaced task
    interrupted) stays in Patroni's "start failed"; `up` has Patroni clone it again from the leader."""
    c = cluster
    roles = _roles(c, "worker-2")
    standby = next(name for name, role in roles.items() if role == "sync_standby")
    data = c.backend.home.nodes / standby / "data"
    with (data / "postgresql.base.conf").open("a") as conf:
        conf.write("\nstreamctl_test_no_such_setting = on\n")  # PostgreSQL refuses to start with it
    os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
    wait_until(f"{standby} in start failed", lambda: _states(c, "worker-2").get(standby) == "start failed", 90)
    leader = next(name for name, role in roles.items() if role == "leader")
    refused = c.cli.run("reinit", standby)  # no terminal, no --yes
    assert refused.returncode == 10 and "--yes" in refused.stderr, refused.stderr
    assert c.cli.run("reinit", leader, "--yes").returncode == 10  # the leader's data is the group's
    done = c.cli.json("reinit", standby, "--yes")
    assert (done["member"], done["group"]) == (standby, "worker-2") and done["seconds"] > 0, done
    wait_until(f"{standby} streaming as sync standby", lambda: _roles(c, "worker-2") == roles, 120)
    assert "streamctl_test_no_such_setting" not in (data / "postgresql.base.conf").read_text()  # the leader's copy
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, 'rc', 'movie')",
                     (str(uuid.uuid4()),))
    assert c.up().changed is False


def test_scale_adds_a_whole_group_and_drains_one_away(cluster: LocalCluster) -> None:
    """Under HA `scale` adds a worker as a group (its leader registered by Patroni, shards moved onto it) and
    removes one as a group: drained through its leader, every member stopped and removed, every row of it
    unregistered, its keys gone from etcd; rows unchanged throughout."""
    c = cluster
    total = "SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata"
    with c.ctx.pg_connect("coordinator") as conn:
        before = conn.execute(total).fetchone()
    grown = c.cli.json("scale", "--workers", "3")
    assert grown["added"] == ["worker-3"] and grown["moves"] > 0, grown
    c.reload()
    group = _group(c, "worker-3")
    assert sorted(_roles(c, "worker-3").values()) == ["leader", "sync_standby"]
    leader = next(m for m in group.members if _roles(c, "worker-3")[m.name] == "leader")
    wait_until("the new group registered", lambda: _registered_primary(c, group.number) == leader.port)
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute(total).fetchone() == before
        assert conn.execute("SELECT count(*) FROM pg_dist_placement WHERE groupid = %s",
                            (group.number,)).fetchone()[0] > 0

    shrunk = c.cli.json("scale", "--workers", "2")
    assert shrunk["removed"] == ["worker-3"], shrunk
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute(total).fetchone() == before
        assert conn.execute("SELECT count(*) FROM pg_dist_node WHERE groupid = %s",
                            (group.number,)).fetchone() == (0,)
    assert not any((c.backend.home.nodes / m.name).exists() for m in group.members)
    assert dcs_keys(c, group.number) == 0 and dcs_keys(c, 1) > 0  # the other groups' records stay
    c.reload()
    assert c.up().changed is False
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,citus")["checks"]} <= {"passed", "skipped"}


def test_rotating_the_superuser_password_reaches_every_patroni(cluster: LocalCluster) -> None:
    """`rotate-secrets postgres_password` under HA: the role changed on each group's leader (its standbys replay
    it), every member's Patroni configuration rewritten and reloaded, so that each Patroni, its sessions cut, logs
    in again with the new password; `rotate-secrets ha_passwords` (Patroni's own users) the same way; then a
    switchover (Patroni's REST API with its new password), a write through the coordinator and verify work."""
    c = cluster
    rotate_superuser(c, _ca(c))
    rotate_ha_passwords(c, _ca(c))
    assert c.up().changed is False  # no password is part of a member's definition: none restarts

    roles = _roles(c, "worker-1")
    standby = next(n for n, r in roles.items() if r == "sync_standby")
    assert c.cli.json("switchover", "worker-1", "--to", standby)["new_leader"] == standby
    group = _group(c, "worker-1")
    wait_until("pg_dist_node naming the new leader",  # the coordinator's Patroni wrote it with the new password
               lambda: _registered_primary(c, group.number) == next(m.port for m in group.members if m.name == standby))
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, 'rot', 'movie')",
                     (str(uuid.uuid4()),))
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'rot'").fetchone() == (1,)
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,citus")["checks"]} <= {"passed", "skipped"}
