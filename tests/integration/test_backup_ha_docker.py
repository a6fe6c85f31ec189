"""Backups with high availability on the Docker backend (#27 and #28): a Citus coordinator, one worker and the
analytics primary (with one logical replica), each with a synchronous standby run by Patroni in its own container,
archiving into a pgBackRest directory repository on the engine's host, mounted into every member's container.

One small cluster goes through the story, in order: `up` writes the same pgBackRest configuration into every
member's container, creates each group's stanza and Patroni's archive_command pushes into it on the leaders; a
seed and a full backup b1, each group's taken in its leader's container from its standby's data (reached through
the pgBackRest TLS server in the standby's container, which admits the group's own certificate only); a forced
failover of the worker group, rows written on the new timeline and an incremental b2 in the new leader's
container, from the old leader's data once it streams again, into the same stanza (its timeline's segments
archived there); then b2's point restored into a new cluster that comes back under ha (each group led by
its restored data, a sync standby cloned from it, pg_dist_node naming the leaders, exactly the point's rows; the
analytics replica subscribed to the restored primary through its permanent slot, receiving rows written after);
then the same point restored in place, over the running cluster: every member's and etcd's volume kept aside,
and the same checks.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from streamctl.backends.docker import spec
from streamctl.backup.docker import standby_options
from streamctl.backup.pgbackrest import PgBackRest, repository_path
from streamctl.backup.restore import Selection, restore_into
from streamctl.backup.take import list_sets, take_backup
from streamctl.config.members import ha_groups
from streamctl.engines.pgbackrest import TLS_PORT
from streamctl.events import Event
from streamctl.ha import rest
from streamctl.names import subscription_name
from streamctl.verify.runner import run_checks
from tests.support.backup import platform_sums
from tests.support.cli import streamctl
from tests.support.cluster import topology_dict, traversable_tmpdir
from tests.support.docker import DockerCluster, docker_client, remove_cluster_resources, unique_cluster, use_image
from tests.support.ha import add_titles, insert_users, member_slots, roles_and_timelines, user_ids, wait_until
from tests.support.images import ensure_citus_image, ensure_test_image
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.docker, pytest.mark.citus]

STANDBY_REPLAY = "replay on the standby reached"  # pgBackRest's log line of a backup from a standby


def _backup(tool: PgBackRest, kind: str, label: str) -> dict[str, str]:
    """Each group's detail of its base backup (where it was taken)."""
    events: list[Event] = []
    take_backup(tool, kind, label, emit=events.append)
    return {e.node: e.detail for e in events if e.kind == "done" and e.step == f"{kind} backup"}


def _archived(c: DockerCluster, stanza: str) -> set[str]:
    return {p.name[:24] for p in (repository_path(c.ctx) / "archive" / stanza).rglob("0000000*")}


@pytest.fixture(scope="module")
def story() -> Any:
    citus = ensure_citus_image()
    directory = traversable_tmpdir()
    etcd = free_port_run(2)
    ha = {"standbys": 1, "synchronous": "on", "port": free_port_run(3), "rest_port": free_port_run(6),
          "analytics": {"standbys": 1}, "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=True, workers=1,
                                   analytics=True, replicas=1, redis=False, fdw=False, ha=ha,
                                   backup={"repository": {"path": str(directory / "repo")}, "archive_timeout": 30}),
                     ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus
    c = DockerCluster.new(data)
    state: dict[str, Any] = {"cluster": c, "names": []}
    try:
        c.up()
        from streamctl.seed.run import SeedOptions, seed

        seed(c.ctx, SeedOptions(scale=0.002, seed=5))
        tool = state["tool"] = PgBackRest(c.ctx, c.backend)
        state["b1"] = _backup(tool, "full", "b1")
        yield state
    finally:
        for name in state["names"]:  # a restored cluster's, even one whose restore failed
            remove_cluster_resources(name)
        c.destroy()
        shutil.rmtree(directory, ignore_errors=True)


def _standby_replays(c: DockerCluster, stanza: str, member: str) -> int:
    """How many backups pgBackRest took from a standby in `member`'s container: its backup log's lines
    saying the standby's replay reached the backup's start."""
    client = docker_client()
    try:
        container = client.containers.get(spec.container_name(c.topology.cluster, member))
        code, out = container.exec_run(["cat", f"{spec.BACKUP_HOME}/log/{stanza}-backup.log"], user="postgres")
    finally:
        client.close()
    return out.decode(errors="replace").count(STANDBY_REPLAY) if code == 0 else 0


def test_every_member_archives_into_its_groups_stanza_and_backups_come_from_the_standbys(story) -> None:
    c, tool = story["cluster"], story["tool"]
    password = c.ctx.store.known_secrets(c.topology)["postgres_password"]
    client = docker_client()
    try:
        for g in ha_groups(c.topology):
            stanza = f"{c.topology.cluster}-{g.node.name}"
            roles = roles_and_timelines(c, g.node.name)
            leader = next(n for n, (role, _) in roles.items() if role == "leader")
            standby = next(n for n in roles if n != leader)
            assert story["b1"][g.node.name] == f"stanza {stanza} from a standby ({standby} streaming from {leader})", \
                story["b1"]
            # pgBackRest's own word, in the leader's container where the backup ran: it read the standby's data
            assert _standby_replays(c, stanza, leader) == 1, stanza
            for m in g.members:  # one configuration, in every member's container: its own data as pg1
                container = client.containers.get(spec.container_name(c.topology.cluster, m.name))
                code, out = container.exec_run(["cat", spec.BACKUP_CONFIG], user="postgres")
                assert code == 0 and out.decode() == tool.render(), out
                assert spec.BACKUP_REPO in {mount["Destination"] for mount in container.attrs["Mounts"]}
                # pgBackRest's TLS server: never a published port, no secret on its command line
                assert f"{TLS_PORT}/tcp" not in (container.attrs["HostConfig"].get("PortBindings") or {})
                command = " ".join([*container.attrs["Config"]["Entrypoint"], *container.attrs["Config"]["Cmd"]])
                assert f"--tls-server-port={TLS_PORT}" in command and password not in command
                listening = _listening(container, TLS_PORT)  # on its address on the cluster's network only
                assert listening and "0.0.0.0" not in listening and "127.0.0.1" not in listening, listening
                # pgBackRest's directory stays postgres's alone, with the password file the backup put in the standby's
                files = [spec.BACKUP_HOME, *([f"{spec.BACKUP_HOME}/pgpass"] if m.name == standby else [])]
                code, out = container.exec_run(["stat", "-c", "%a %U", *files])
                assert code == 0 and out.decode().split("\n")[:len(files)] == \
                    ["700 postgres", "600 postgres"][:len(files)], (m.name, out)
            with c.ctx.pg_connect(g.node.name) as conn:  # Patroni's archive_command, on the leader
                command = conn.execute("SHOW archive_command").fetchone()[0]
            assert f"--config={spec.BACKUP_CONFIG} --stanza={stanza} " in command, command
        # a server admits its own group's certificate only: the coordinator's is refused by a worker's standby
        worker = next(g for g in ha_groups(c.topology) if g.node.name == "worker-1")
        leaders = {g.node.name: next(n for n, (role, _) in roles_and_timelines(c, g.node.name).items()
                                     if role == "leader") for g in ha_groups(c.topology)}
        standby = next(m.name for m in worker.members if m.name != leaders["worker-1"])
        reach = ["pgbackrest", f"--config={spec.BACKUP_CONFIG}", f"--stanza={c.topology.cluster}-worker-1",
                 *standby_options(1, standby, c.topology.pg_user, None), "check"]
        said = {}
        for group in ("coordinator", "worker-1"):  # the same command with each group's certificate
            container = client.containers.get(spec.container_name(c.topology.cluster, leaders[group]))
            code, out = container.exec_run(reach, user="postgres")
            said[group] = (code, out.decode(errors="replace"))
        assert said["coordinator"][0] != 0 and "access denied" in said["coordinator"][1], said
        assert "access denied" not in said["worker-1"][1], said
    finally:
        client.close()
    report = run_checks(c.ctx, ["backup"])
    assert {r.target: r.status.value for r in report.results} == {
        "coordinator": "passed", "worker-1": "passed", "analytics-primary": "passed"}, [
        r.to_json() for r in report.results]
    assert c.up().changed is False  # archiving as `up` left it, on every member: nothing pending


def _listening(container: Any, port: int) -> list[str]:
    """The IPv4 addresses a process in the container listens on at `port` (/proc/net/tcp, state 0A)."""
    code, out = container.exec_run(["cat", "/proc/net/tcp"])
    assert code == 0, out
    found = []
    for line in out.decode().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_after_a_failover_archiving_and_backups_go_on_into_the_same_stanza(story) -> None:
    c, tool = story["cluster"], story["tool"]
    before = roles_and_timelines(c, "worker-1")
    old = next(name for name, (role, _) in before.items() if role == "leader")
    done = c.cli.json("failover", "worker-1", "--yes")
    new = done["new_leader"]
    assert done["leader"] == old and new != old, done
    after = roles_and_timelines(c, "worker-1")
    assert after[new][0] == "leader" and after[new][1] == before[old][1] + 1, after  # a new timeline
    wait_until("the old leader streaming from the new one", lambda: rest.ready(
        next(g for g in ha_groups(c.topology) if g.node.name == "worker-1").members, c.ctx.ca_path(), False), 120)
    add_titles(c, "after-failover")
    stanza = f"{c.topology.cluster}-worker-1"
    details = _backup(tool, "incr", "b2")
    assert details["worker-1"] == f"stanza {stanza} from a standby ({old} streaming from {new})", details
    assert _standby_replays(c, stanza, new) == 1  # in the new leader's container, from its old leader's data
    sets = {s.label: s for s in list_sets(tool)}
    assert sets["b2"].point == "b2" and sets["b2"].type == "incr" and sets["b1"].point == "b1"
    assert f"{after[new][1]:08X}" in {name[:8] for name in _archived(c, stanza)}  # the new leader's timeline
    report = run_checks(c.ctx, ["backup"])
    assert {r.status.value for r in report.results} == {"passed"}, [r.to_json() for r in report.results]
    story["sums_b2"] = platform_sums(c.ctx)
    story["users_b2"] = user_ids(c, "analytics-primary")


def _back_under_ha(restored: DockerCluster, story: dict[str, Any]) -> None:
    """Each group's restored data leads (its first member's) with a sync standby cloned from it, pg_dist_node
    names the leaders, exactly the point's rows, the analytics replica subscribed through its slot (on every
    member) and receiving rows written afterwards."""
    leaders = {}
    for g in ha_groups(restored.topology):
        states = rest.group_members(g.members, restored.ctx.ca_path() if restored.ctx.tls_on else None)
        assert sorted((s.ha_role, s.state) for s in states) == [("leader", "running"), ("sync_standby", "streaming")]
        leader = next(s.name for s in states if s.ha_role == "leader")
        assert leader == g.node.name, states  # the restored data, the group's first member
        if g.number is not None:  # a Citus group
            leaders[g.number] = leader
    with restored.ctx.pg_connect("coordinator") as conn:
        primaries = dict(conn.execute("SELECT groupid, nodename FROM pg_dist_node WHERE noderole = 'primary' "
                                      "AND isactive").fetchall())
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'after-failover'").fetchone() == (20,)
    assert primaries == leaders, (primaries, leaders)
    assert platform_sums(restored.ctx) == story["sums_b2"]
    replica, slot = "analytics-replica-1", subscription_name("analytics-replica-1")
    assert user_ids(restored, replica) == story["users_b2"] == user_ids(restored, "analytics-primary")
    analytics = next(g for g in ha_groups(restored.topology) if g.number is None)
    assert all(slot in member_slots(restored, "analytics-primary", m.name) for m in analytics.members)
    insert_users(restored, "after-restore", 5)
    wait_until("the restored replica receiving rows",
               lambda: user_ids(restored, replica) == user_ids(restored, "analytics-primary"), 60)


def test_restore_of_the_point_after_the_failover_comes_back_under_ha(story) -> None:
    """Into a new cluster beside the running one, back under ha (_back_under_ha), the leaders archiving into the
    new cluster's own stanzas."""
    c = story["cluster"]
    if "sums_b2" not in story:
        pytest.skip("the failover test did not take b2")
    into = f"{c.topology.cluster}-r"
    story["names"].append(into)
    result = restore_into(c.ctx, c.backend, Selection(point="b2"), into)
    assert result.topology_file is not None and result.verify is not None
    restored = DockerCluster(result.topology_file)
    bad = [r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
    assert not bad, bad  # its HA checks included
    _back_under_ha(restored, story)
    for g in ha_groups(restored.topology):
        with restored.ctx.pg_connect(g.node.name) as conn:
            assert f"--stanza={into}-{g.node.name} " in conn.execute("SHOW archive_command").fetchone()[0]


def test_in_place_restore_under_ha_keeps_every_volume_aside_and_comes_back_under_ha(story) -> None:
    """The running cluster itself (the worker group led by its standby since the failover) back to b2: every
    node's, standby's and etcd's volume kept aside as a copy, each group led by its restored data again, the
    same stanzas archiving on."""
    c = story["cluster"]
    if "sums_b2" not in story:
        pytest.skip("the failover test did not take b2")
    insert_users(c, "after-b2", 5)  # rows the restore must take away
    proc = streamctl("restore", "-f", str(c.path), "--point", "b2", "--in-place", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["verify"]["ok"], result["verify"]
    c.reload()
    _back_under_ha(c, story)
    kept = sorted(k.split()[1].split("-data-before-restore-")[0].removeprefix(f"{c.cluster}-")
                  for k in result["kept_aside"])
    members = [m.name for g in ha_groups(c.topology) for m in g.members]
    assert kept == sorted([*members, "analytics-replica-1", "etcd-1"]), kept
    assert {r.status.value for r in run_checks(c.ctx, ["backup"]).results} == {"passed"}
    for g in ha_groups(c.topology):
        with c.ctx.pg_connect(g.node.name) as conn:
            assert f"--stanza={c.cluster}-{g.node.name} " in conn.execute("SHOW archive_command").fetchone()[0]
