"""Backups with high availability on (local backend, #27 and #28): a Citus coordinator and one worker, each with
a synchronous standby run by Patroni, archiving into a pgBackRest directory repository.

One cluster goes through the story, in order: `up` creates each group's stanza (every member listed) and archiving
works on the leaders; a seed and a full backup b1 taken from the standbys (pgBackRest's log says so); rows added and
an incremental b2 with its restore point; a forced failover of the worker group; rows added on the new timeline and
a backup b3 (from the old leader, now the standby); archiving went on into the same stanza (timeline 2 segments);
then the worker's leader crashes with two finished segments it never pushed (its archiver stopped) and the standby,
promoted, pushes them; `restore --point` of b3 into a new cluster that comes back under ha (each group led by the
restored data, a sync standby cloned from it, pg_dist_node naming the leaders, exactly the point's rows); `restore
--in-place` of b2 (every member's Patroni stopped, the standbys' directories and etcd kept aside, the restored data
each group's leader again, the standbys cloned from it); last, the cluster removed (`down --volumes`) and made again
under ha by `up --from-backup b2`; each holding exactly b2's rows.

Before the story, a cluster of its own (torn down first): the analytics primary under HA with one standby and one
replica, backed up across a switchover of its group and restored into a new cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamctl.backup.pgbackrest import PgBackRest, repository_path
from streamctl.backup.restore import Selection, restore_into
from streamctl.backup.take import list_sets, take_backup
from streamctl.config.members import ha_groups
from streamctl.events import Event
from streamctl.ha import rest
from streamctl.verify.runner import run_checks
from tests.support.backup import platform_sums
from tests.support.cluster import LocalCluster, topology_dict, traversable_tmpdir
from tests.support.engines import require
from tests.support.ha import (
    USER_INSERT,
    add_titles,
    group_of,
    kill_member,
    member_slots,
    roles_and_timelines,
    user_ids,
    wait_until,
)
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.citus, pytest.mark.etcd,
              pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed "
                                 "(./scripts/install --test installs it)")]

STANDBY_REPLAY = "replay on the standby reached"  # pgBackRest's log line of a backup from a standby


def _backup(c: LocalCluster, tool: PgBackRest, kind: str, label: str) -> list[Event]:
    events: list[Event] = []
    take_backup(tool, kind, label, emit=events.append)
    return events


def _backup_log(tool: PgBackRest, stanza: str) -> str:
    return (tool.home / "log" / f"{stanza}-backup.log").read_text(errors="replace")


ANALYTICS, ANALYTICS_STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"


@pytest.fixture
def analytics_cluster() -> Any:
    """The smallest layout with the analytics primary under HA and backups: a Citus coordinator and one worker
    (groups of one member), the analytics primary with one standby, one analytics replica. A test of its own,
    torn down before the story's cluster starts (the two never run at once)."""
    require("citus", "etcd")
    directory = traversable_tmpdir()
    etcd = free_port_run(2)
    ha = {"standbys": 0, "analytics": {"standbys": 1}, "loop_wait": 2, "port": free_port_run(1),
          "rest_port": free_port_run(4), "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = topology_dict(cluster=f"bkan{os.getpid() % 10000}", citus=True, workers=1, analytics=True, replicas=1,
                         redis=False, fdw=False, ha=ha, backup={"repository": {"path": str(directory / "repo")},
                                                                "archive_timeout": 30})
    c = LocalCluster.new(data)
    try:
        c.up()
        yield c
    finally:
        _teardown(c, directory)


def _teardown(c: LocalCluster, directory: Path) -> None:
    """The cluster, every cluster restored beside it (even one whose restore failed) and the repository's
    directory, best effort."""
    for path in c.path.parent.glob("*.yaml"):
        if path != c.path:
            with contextlib.suppress(Exception):
                _remove(LocalCluster(path))
    with contextlib.suppress(Exception):
        c.destroy()
    shutil.rmtree(directory, ignore_errors=True)


def _add_users(c: LocalCluster, tag: str, n: int = 20) -> None:
    """`n` analytics `users` rows tagged `tag`, written through the analytics group's leader."""
    with c.ctx.pg_connect(ANALYTICS, "analytics_db") as conn:
        for _ in range(n):
            conn.execute(USER_INSERT, {"id": str(uuid.uuid4()), "title": tag})


def _tagged(c: LocalCluster, node: str, tag: str) -> int:
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        return int(conn.execute("SELECT count(*) FROM users WHERE username LIKE %s", (f"%{tag}",)).fetchone()[0])


def test_the_analytics_primary_under_ha_is_backed_up_across_a_switchover_and_restored(analytics_cluster) -> None:
    """Its group's stanza lists both members and the leader archives into it; a full backup from its standby; rows
    written, a switchover of the analytics group (the standby leads, on a new timeline), more rows, an incremental
    backup with its restore point (from the old leader, a standby now), rows after it; archiving went on into the
    same stanza and verify's archiving check passes on the new leader; then the point restored three ways, each
    coming back under HA (verify passes, the analytics group led by the restored data, its standby cloned and
    streaming, exactly the point's rows on the primary and its replica, the replica's slot permanent and new rows
    reaching it): into a new cluster, in place (the standby led: the restored data leads again), and by `up
    --from-backup` after `down --volumes`."""
    from streamctl.seed.run import SeedOptions, seed

    c = analytics_cluster
    tool = PgBackRest(c.ctx, c.backend)
    stanza = f"{c.topology.cluster}-{ANALYTICS}"
    group = group_of(c, ANALYTICS)
    section = tool.config.read_text().split(f"[{stanza}]", 1)[1].split("\n\n", 1)[0]
    assert all(f"pg{i}-port={m.port}" in section for i, m in enumerate(group.members, 1)), section
    seed(c.ctx, SeedOptions(scale=0.002, seed=7))
    done = {e.node: e.detail for e in _backup(c, tool, "full", "a1") if e.kind == "done" and e.step == "full backup"}
    assert set(done) == {"coordinator", "worker-1", ANALYTICS}, done
    assert f"from a standby ({ANALYTICS_STANDBY} streaming from {ANALYTICS})" in done[ANALYTICS], done
    assert STANDBY_REPLAY in _backup_log(tool, stanza)
    _add_users(c, "-before-switchover")
    before = roles_and_timelines(c, ANALYTICS)
    assert before[ANALYTICS][0] == "leader", before
    switched = c.cli.json("switchover", ANALYTICS, "--to", ANALYTICS_STANDBY)
    assert switched["new_leader"] == ANALYTICS_STANDBY, switched
    after = roles_and_timelines(c, ANALYTICS)
    assert after[ANALYTICS_STANDBY] == ("leader", before[ANALYTICS][1] + 1), after  # a new timeline
    wait_until("the old leader streaming from the new one",
               lambda: rest.ready(group.members, c.ctx.ca_path() if c.ctx.tls_on else None, False), 120)
    _add_users(c, "-after-switchover")
    events = _backup(c, tool, "incr", "a2")
    done = {e.node: e.detail for e in events if e.kind == "done" and e.step == "incr backup"}
    assert f"from a standby ({ANALYTICS} streaming from {ANALYTICS_STANDBY})" in done[ANALYTICS], done
    sums = platform_sums(c.ctx)  # the point's rows (nothing is written during the backup)
    wait_until("the replica caught up", lambda: user_ids(c, REPLICA) == user_ids(c, ANALYTICS), 60)
    replica_ids = user_ids(c, REPLICA)
    _add_users(c, "-after-a2")
    timeline = f"{after[ANALYTICS_STANDBY][1]:08X}"
    assert timeline in {p.name[:8] for p in (repository_path(c.ctx) / "archive" / stanza).rglob("0000000*")}
    report = run_checks(c.ctx, ["backup"])  # the new leader archives, nothing left waiting
    assert {r.target: r.status.value for r in report.results} == {
        "coordinator": "passed", "worker-1": "passed", ANALYTICS: "passed"}, [r.to_json() for r in report.results]
    with c.ctx.pg_connect(ANALYTICS) as conn:  # the leader's archive_command: its own data directory, the stanza
        command = conn.execute("SHOW archive_command").fetchone()[0]
    assert f"--stanza={stanza} " in command, command
    assert f"--pg1-path={c.backend.member_paths(group.node, group.members[1]).data_dir} " in command, command

    result = restore_into(c.ctx, c.backend, Selection(point="a2"), f"{c.topology.cluster}-a2")
    assert result.topology_file is not None
    restored = LocalCluster(result.topology_file)
    assert result.verify is not None and int(result.verify.exit_code) == 0, [  # its HA checks included
        r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
    assert [g.node.name for g in ha_groups(restored.topology)] == ["coordinator", "worker-1", ANALYTICS]
    _assert_analytics_back(restored, sums, replica_ids)
    assert all(s.name.startswith(f"{restored.topology.cluster}-")
               for s in PgBackRest(restored.ctx, restored.backend).stanzas())
    _remove(restored)

    # in place, the analytics group led by its standby: the restored data (in the node's own directory) leads
    done = c.cli.json("restore", "--point", "a2", "--in-place", "--yes")
    assert done["restore_point"] == "a2" and done["verify"]["exit_code"] == 0, done
    kept = {Path(p).name.split(".before-restore-")[0] for p in done["kept_aside"]}
    assert {"data", "patroni.yml", ANALYTICS_STANDBY, "etcd"} <= kept, kept  # nothing deleted
    c.reload()
    _assert_analytics_back(c, sums, replica_ids)
    for aside in done["kept_aside"]:
        shutil.rmtree(aside, ignore_errors=True) if Path(aside).is_dir() else Path(aside).unlink()

    c.down(volumes=True)  # and the same point as a new cluster of this topology
    done = c.cli.json("up", "--from-backup", "a2")
    assert done["restore_point"] == "a2" and done["verify"]["exit_code"] == 0, done
    c.reload()
    _assert_analytics_back(c, sums, replica_ids)


def _assert_analytics_back(c: LocalCluster, sums: Any, replica_ids: Any) -> None:
    """After a restore of a2 under HA: the analytics group led by the restored data (its node), the standby
    cloned from it and streaming; exactly the point's rows on the primary and its replica; the replica's slot
    a permanent slot, present on the standby too, and rows written afterwards reach the replica."""
    from streamctl.names import subscription_name

    members, ca = group_of(c, ANALYTICS).members, c.ctx.ca_path() if c.ctx.tls_on else None
    wanted = {ANALYTICS: ("leader", "running"), ANALYTICS_STANDBY: ("replica", "streaming")}
    for _ in range(5):  # and it stays so: Patroni does not restart the standby to copy the slot again
        assert {s.name: (s.ha_role, s.state) for s in rest.group_members(members, ca)} == wanted
        time.sleep(1)
    assert platform_sums(c.ctx) == sums
    assert (_tagged(c, ANALYTICS, "-after-switchover"), _tagged(c, ANALYTICS, "-after-a2")) == (20, 0)
    assert user_ids(c, REPLICA) == replica_ids == user_ids(c, ANALYTICS)
    slot = subscription_name(REPLICA)
    wait_until("the replica's slot on the standby", lambda: slot in member_slots(c, ANALYTICS, ANALYTICS_STANDBY), 60)
    _add_users(c, "-after-restore")
    wait_until("the replica receiving rows", lambda: _tagged(c, REPLICA, "-after-restore") == 20, 60)


@pytest.fixture(scope="module")
def story() -> Any:
    require("citus", "etcd")
    directory = traversable_tmpdir()
    etcd = free_port_run(2)
    ha = {"standbys": 1, "synchronous": "on", "port": free_port_run(2), "rest_port": free_port_run(4),
          "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = topology_dict(cluster=f"bkha{os.getpid() % 10000}", citus=True, workers=1, analytics=False, replicas=0,
                         redis=False, fdw=False, ha=ha, backup={"repository": {"path": str(directory / "repo")},
                                                                "archive_timeout": 30})
    c = LocalCluster.new(data)
    state: dict[str, Any] = {"cluster": c}
    try:
        c.up()
        from streamctl.seed.run import SeedOptions, seed

        seed(c.ctx, SeedOptions(scale=0.002, seed=5))
        tool = state["tool"] = PgBackRest(c.ctx, c.backend)
        state["b1"] = _backup(c, tool, "full", "b1")
        add_titles(c, "after-b1")
        state["b2"] = _backup(c, tool, "incr", "b2")
        state["sums_b2"] = platform_sums(c.ctx)
        yield state
    finally:
        _teardown(c, directory)


def test_each_groups_stanza_lists_every_member_and_the_leaders_archive(story) -> None:
    c, tool = story["cluster"], story["tool"]
    conf = tool.config.read_text()
    for g in ha_groups(c.topology):
        section = conf.split(f"[{c.topology.cluster}-{g.node.name}]", 1)[1].split("\n\n", 1)[0]
        assert [f"pg{i}-port={m.port}" in section for i, m in enumerate(g.members, 1)] == [True, True], section
    report = run_checks(c.ctx, ["backup"])
    assert {r.target: r.status.value for r in report.results} == {"coordinator": "passed", "worker-1": "passed"}, \
        [r.to_json() for r in report.results]
    for g in ha_groups(c.topology):  # Patroni's archive_command, on the leader: its own data directory
        with c.ctx.pg_connect(g.node.name) as conn:
            command, port = conn.execute("SELECT current_setting('archive_command'), "
                                         "current_setting('port')").fetchone()
        member = next(m for m in g.members if m.port == int(port))
        assert f"--stanza={c.topology.cluster}-{g.node.name} " in command, command
        assert f"--pg1-path={c.backend.member_paths(g.node, member).data_dir} " in command, command
    assert c.up().changed is False  # archiving as `up` left it: nothing pending


def test_base_backups_come_from_the_standbys(story) -> None:
    c, tool = story["cluster"], story["tool"]
    done = {e.node: e.detail for e in story["b1"] if e.kind == "done" and e.step == "full backup"}
    assert set(done) == {"coordinator", "worker-1"} and all("from a standby" in d for d in done.values()), done
    for g in ha_groups(c.topology):
        assert STANDBY_REPLAY in _backup_log(tool, f"{c.topology.cluster}-{g.node.name}")
    sets = {s.label: s for s in list_sets(tool)}
    assert sets["b1"].point == "b1" and sets["b2"].point == "b2" and sets["b2"].type == "incr"


def test_after_a_failover_archiving_and_backups_go_on_into_the_same_stanza(story) -> None:
    c, tool = story["cluster"], story["tool"]
    before = roles_and_timelines(c, "worker-1")
    old = next(name for name, (role, _) in before.items() if role == "leader")
    done = c.cli.json("failover", "worker-1", "--yes")
    assert done["leader"] == old and done["new_leader"] != old, done
    after = roles_and_timelines(c, "worker-1")
    assert after[done["new_leader"]][0] == "leader" and after[old][0] == "sync_standby", after
    assert after[done["new_leader"]][1] == before[old][1] + 1  # a new timeline
    add_titles(c, "after-failover")
    events = _backup(c, tool, "incr", "b3")
    worker = next(e.detail for e in events if e.kind == "done" and e.node == "worker-1" and "backup" in e.step)
    assert f"from a standby ({old} streaming" in worker, worker  # the old leader, a standby now
    story["sums_b3"] = platform_sums(c.ctx)
    stanza = f"{c.topology.cluster}-worker-1"
    archived = {p.name[:8] for p in (repository_path(c.ctx) / "archive" / stanza).rglob("0000000*")}
    timeline = f"{after[done['new_leader']][1]:08X}"
    assert timeline in archived, archived  # the new leader pushes its timeline into the group's stanza
    report = run_checks(c.ctx, ["backup"])
    assert {r.status.value for r in report.results} == {"passed"}, [r.to_json() for r in report.results]


def _archived(c: LocalCluster, stanza: str) -> set[str]:
    return {p.name[:24] for p in (repository_path(c.ctx) / "archive" / stanza).rglob("0000000*")}


def test_segments_a_crashed_leader_left_unpushed_reach_the_repository(story) -> None:
    """The worker leader's archiver stopped, two segments finished (pushed nowhere), then the leader crashes
    (Patroni and PostgreSQL SIGKILLed): its sync standby, promoted, pushes them (it had received them streaming,
    and a standby archives nothing itself: without its push they would be missing for good). `up` brings the
    crashed member back as a standby."""
    c = story["cluster"]
    group = group_of(c, "worker-1")
    stanza = f"{c.topology.cluster}-worker-1"
    roles = roles_and_timelines(c, "worker-1")
    leader = next(name for name, (role, _) in roles.items() if role == "leader")
    standby = next(name for name, (role, _) in roles.items() if role == "sync_standby")
    with c.ctx.pg_connect("worker-1") as conn:  # the leader (clients reach it)
        archiver = int(conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'").fetchone()[0])
        os.kill(archiver, signal.SIGSTOP)
        finished = []
        for i in range(2):
            add_titles(c, f"unpushed-{i}", 5)  # acknowledged by the sync standby
            finished.append(conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0])
            conn.execute("SELECT pg_switch_wal()")
    add_titles(c, "after-the-switches", 5)  # its acknowledgement: the standby holds both segments whole
    assert not set(finished) & _archived(c, stanza), finished  # the archiver pushed neither
    kill_member(c.backend.home.nodes / leader)
    os.kill(archiver, signal.SIGKILL)
    ca = c.ctx.ca_path() if c.ctx.tls_on else None
    wait_until("the standby promoted",
               lambda: roles_and_timelines(c, "worker-1").get(standby, ("", 0))[0] == "leader", 90)
    wait_until("the crashed leader's finished segments in the repository",
               lambda: set(finished) <= _archived(c, stanza), 60)
    c.up()
    wait_until("the crashed member streaming again", lambda: rest.ready(group.members, ca, True), 120)
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title LIKE 'unpushed-%'").fetchone() == (10,)


def _remove(restored: LocalCluster) -> None:
    """A restored cluster's nodes, data and state, and its topology file (beside the original's)."""
    restored.reload()
    restored.down(volumes=True)
    restored.path.unlink(missing_ok=True)


def _assert_under_ha(c: LocalCluster) -> None:
    """Each group led by one member with a synchronous standby streaming from it, pg_dist_node's primaries the
    leaders, every leader archiving into the cluster's own stanza for its group."""
    leaders = {}
    for g in ha_groups(c.topology):
        states = rest.group_members(g.members, c.ctx.ca_path() if c.ctx.tls_on else None)
        roles = sorted((s.ha_role, s.state) for s in states)
        assert roles == [("leader", "running"), ("sync_standby", "streaming")], (g.node.name, states)
        leaders[g.number] = next(s.port for s in states if s.ha_role == "leader")
    with c.ctx.pg_connect("coordinator") as conn:
        primaries = dict(conn.execute("SELECT groupid, nodeport FROM pg_dist_node WHERE noderole = 'primary' "
                                      "AND isactive").fetchall())
    assert primaries == leaders, (primaries, leaders)
    stanzas = {s.node.name: s.name for s in PgBackRest(c.ctx, c.backend).stanzas()}
    for g in ha_groups(c.topology):
        with c.ctx.pg_connect(g.node.name) as conn:
            assert f"--stanza={stanzas[g.node.name]} " in conn.execute("SHOW archive_command").fetchone()[0]


def test_restore_of_the_point_after_the_failover_comes_back_under_ha(story) -> None:
    c = story["cluster"]
    if "sums_b3" not in story:
        pytest.skip("the failover test did not take b3")
    name = f"{c.topology.cluster}-b3"
    result = restore_into(c.ctx, c.backend, Selection(point="b3"), name)
    assert result.topology_file is not None
    restored = LocalCluster(result.topology_file)
    assert result.verify is not None and int(result.verify.exit_code) == 0, [  # its HA checks included
        r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
    t = restored.topology
    assert t.ha is not None and [g.node.name for g in ha_groups(t)] == ["coordinator", "worker-1"]
    assert not {m.port for g in ha_groups(t) for m in g.members} & {m.port for g in ha_groups(c.topology)
                                                                    for m in g.members}  # ports of its own
    assert t.ha.etcd.port != c.topology.ha.etcd.port
    _assert_under_ha(restored)
    assert platform_sums(restored.ctx) == story["sums_b3"]
    with restored.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'after-failover'").fetchone() == (20,)
    assert all(s.name.startswith(f"{name}-") for s in PgBackRest(restored.ctx, restored.backend).stanzas())
    _remove(restored)


def test_in_place_restore_under_ha_makes_the_restored_data_each_groups_leader(story) -> None:
    c = story["cluster"]
    proc = c.cli.run("up", "--from-backup", "b2")  # the cluster exists: `up --from-backup` makes a new one only
    assert proc.returncode == 10 and "already exist" in proc.stderr, proc.stderr
    done = c.cli.json("restore", "--point", "b2", "--in-place", "--yes")
    assert done["restore_point"] == "b2" and done["verify"]["exit_code"] == 0, done
    kept = {Path(p).name.split(".before-restore-")[0] for p in done["kept_aside"]}
    assert {"data", "patroni.yml", "coordinator-2", "worker-1-2", "etcd"} <= kept, kept  # nothing deleted
    c.reload()
    _assert_under_ha(c)
    assert platform_sums(c.ctx) == story["sums_b2"]
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'after-failover'").fetchone() == (0,)
    for aside in done["kept_aside"]:
        shutil.rmtree(aside, ignore_errors=True) if Path(aside).is_dir() else Path(aside).unlink()


def test_up_from_backup_under_ha_after_down_volumes(story) -> None:
    c = story["cluster"]
    c.down(volumes=True)
    done = c.cli.json("up", "--from-backup", "b2")
    assert done["restore_point"] == "b2" and done["verify"]["exit_code"] == 0, done
    c.reload()
    _assert_under_ha(c)
    assert platform_sums(c.ctx) == story["sums_b2"]
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'after-failover'").fetchone() == (0,)
    assert all(s.name.startswith(f"{c.topology.cluster}-g") for s in PgBackRest(c.ctx, c.backend).stanzas())


def test_backups_turned_off_under_ha_turn_archiving_off_on_every_member(story) -> None:
    """`backup.enabled: false` on the cluster that `up --from-backup` made: `up` removes archive_mode and
    archive_timeout from each group's dynamic configuration and has Patroni restart the members for them, the
    standby first (archive_mode left on with no archive_command keeps every WAL segment): every member runs with
    archive_mode off and waits for no restart, each group led with a sync standby, the rows unchanged; a second
    `up` has nothing left to do."""
    from streamctl.services.ha import DCS_STEP
    from tests.support.ha import member_login

    c = story["cluster"]
    sums = platform_sums(c.ctx)
    c.edit(lambda d: d["backup"].update(enabled=False))
    done = c.up()
    changes = [ch for _, step, chs in done.config_changes if step == DCS_STEP for ch in chs]
    assert "postgresql.parameters.archive_mode removed in Patroni's configuration" in changes, changes
    ca = c.ctx.ca_path() if c.ctx.tls_on else None
    for g in ha_groups(c.topology):
        parameters = rest.dynamic_config(g.members, ca).get("postgresql", {}).get("parameters", {})
        assert not {"archive_mode", "archive_timeout"} & set(parameters), (g.node.name, parameters)
        for m in g.members:
            assert not rest.get(m, "/patroni", ca).get("pending_restart"), m.name
            with member_login(c, g, m, c.ctx.secrets["postgres_password"]) as conn:
                assert conn.execute("SHOW archive_mode").fetchone() == ("off",), m.name
        # the leader restarted last: its standby reconnects, and Patroni may hold the sync role back a loop
        wait_until(f"{g.node.name} led with a sync standby", lambda g=g: sorted(
            r for r, _ in roles_and_timelines(c, g.node.name).values()) == ["leader", "sync_standby"], 60)
    assert platform_sums(c.ctx) == sums
    again = c.up()
    assert not [ch for _, step, chs in again.config_changes if step == DCS_STEP for ch in chs], again.config_changes
