"""Backups on a three-host Swarm (Docker-in-Docker, tests/support/dind.py) with Citus, the repository on one
host and the nodes on the others: pgBackRest's repository-host mode over TLS (backends/swarm/backup.py,
backup/swarm.py). One cluster: `up` with `backup:` (stanzas, archive_command, check), a little seeded,
`streamctl backup`, `backup list --json` (the set with its restore point, a backup of every node), the
repository directory on the manager only, a second `up` with nothing to do, archiving checked by verify;
the repository's task replaced by Swarm, the nodes archive into the new one. Redis runs on a host that is
not the manager: its snapshot is read there by a one-shot task and kept in the repository directory. Then
rows and a Redis key written after the backup, and `restore --point` into a new cluster on the same hosts
(each node recovered by a one-shot task on the host that then runs it, on a network of the restore's own;
Redis's volume written there from the set's snapshot): exactly the point's rows on every node and the
point's keys in Redis, the original's catalog and rows unchanged, no restore service or secret left,
`down --volumes` of the copy clean; last `up --from-backup` of the original, Redis's keys included.

Marked `multihost`: scripts/test runs these in their own pytest phase, after the other tests.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamctl.citus import recovery as citus_recovery
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.readiness import Readiness
from tests.support.backup import platform_sums
from tests.support.cli import Cli
from tests.support.cluster import traversable_tmpdir
from tests.support.dind import DindSwarm, kill_task, services, swarm_cli
from tests.support.docker import example_topology
from tests.support.images import ensure_citus_image

pytestmark = [pytest.mark.docker, pytest.mark.multihost]

# db-1 (manager): the repository; db-2: the coordinator and worker-2; db-3: worker-1 and Redis.
PLACEMENT = {
    "roles": {"redis": ["node.hostname == db-3"]},
    "nodes": {"coordinator": ["node.hostname == db-2"], "worker-1": ["node.hostname == db-3"],
              "worker-2": ["node.hostname == db-2"]},
}
NODES = {"coordinator", "worker-1", "worker-2"}
STORY: dict[str, object] = {}  # what the first test saw, for the restore's


@pytest.fixture(scope="module")
def swarm(shared_swarm: DindSwarm) -> DindSwarm:
    return shared_swarm


@pytest.fixture(scope="module")
def cli(swarm: DindSwarm) -> Iterator[Cli]:
    directory = traversable_tmpdir()  # backend: swarm, so that `backup` (which takes no --backend) runs there
    data = example_topology("topology.yaml", citus_image=ensure_citus_image(), backend="swarm", bind="0.0.0.0",
                            placement=PLACEMENT, backup={"repository": {"path": str(directory / "repo")}})
    data["analytics"]["enabled"] = data["fdw"]["enabled"] = data["gateway"]["enabled"] = False
    with swarm_cli(swarm, directory, data) as c:
        yield c


def _on_host(swarm: DindSwarm, hostname: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", swarm.node(hostname).container, *argv], capture_output=True,
                          text=True, timeout=60)


def test_backup_with_the_repository_on_one_host_and_the_nodes_on_others(cli: Cli, swarm: DindSwarm) -> None:
    cli.ok("up")
    cli.ok("seed", "--scale", "0.002")
    _redis_set(cli.path, "streamctl-test:before", "in the set")
    done = cli.json("backup", "--label", "first")
    assert done["label"] == "first" and done["restorable"], done
    _redis_set(cli.path, "streamctl-test:after", "not in the set")
    (listed,) = cli.json("backup", "list")
    assert listed["restore_points"][0]["name"] == "first" and listed["restorable"], listed
    assert listed["redis"], listed  # the RDB is in the set, read on db-3
    rdb = _on_host(swarm, "db-1", "test", "-s", str(Path(cli.path).parent / "repo" / "streamctl" / cli.cluster /
                                                   "first" / "redis.rdb"))
    assert rdb.returncode == 0, rdb
    assert not [n for n in services(swarm, cli.cluster) if "snapshot" in n], services(swarm, cli.cluster)
    assert {n["node"] for n in listed["nodes"]} == NODES, listed
    assert all(n["wal"]["from"] and n["wal"]["to"] for n in listed["nodes"]), listed
    STORY["sums"] = platform_sums(_ctx(cli.path))
    # the repository is the manager's directory; the nodes' hosts hold none of it
    repo = Path(cli.path).parent / "repo"
    stanzas = _on_host(swarm, "db-1", "ls", str(repo / "backup"))
    assert set(stanzas.stdout.split()) == {f"{cli.cluster}-{n}" for n in NODES}, stanzas
    for host in ("db-2", "db-3"):
        assert _on_host(swarm, host, "test", "-e", str(repo)).returncode == 1
    again = cli.json("up")  # archiving as it was set: nothing to do, no service changed
    assert {n["action"] for n in again["nodes"]} == {"noop"}, again["nodes"]
    assert not [c for c in again["configured"] if c["step"] == "wal archiving"], again["configured"]
    archiving = cli.json("verify", "--only", "backup.archiving")
    assert archiving["ok"], archiving
    # the repository's task replaced by Swarm (its container killed): the nodes push to the new one with no
    # streamctl command in between (its configuration is a secret of the service)
    kill_task(swarm, f"{cli.cluster}-backup")
    cli.sql("coordinator", "SELECT txid_current()")  # some WAL to switch away from
    segment = cli.sql("coordinator", "SELECT pg_walfile_name(pg_switch_wal())")
    Readiness(f"the coordinator's segment {segment} to reach the repository", lambda: cli.sql(
        "coordinator", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[:24] >= segment,
        120.0, interval=1.0).wait()


def _ctx(path: Path) -> ClusterContext:
    return ClusterContext.build(load_topology(path), path.absolute())


def _redis_set(path: Path, key: str, value: str) -> None:
    client = _ctx(path).redis()
    try:
        client.set(key, value)
    finally:
        client.close()


def _redis_keys(path: Path) -> dict[str, str | None]:
    """The test's two keys as the cluster's Redis holds them."""
    client = _ctx(path).redis()
    try:
        return {k: client.get(f"streamctl-test:{k}") for k in ("before", "after")}
    finally:
        client.close()


SET_KEYS = {"before": "in the set", "after": None}


def _secrets(swarm: DindSwarm, prefix: str) -> list[str]:
    manager = swarm.manager.client()
    try:
        return [s.name for s in manager.secrets.list() if s.name.startswith(prefix)]
    finally:
        manager.close()


def _networks(swarm: DindSwarm, name: str) -> list[str]:
    manager = swarm.manager.client()
    try:
        return [n.name for n in manager.networks.list(names=[name]) if n.name == name]
    finally:
        manager.close()


def _volumes(swarm: DindSwarm, cluster: str) -> list[str]:
    out = []
    for node in swarm.nodes:
        nested = node.client()
        try:
            out += [f"{node.hostname}:{v.name}" for v in nested.volumes.list(
                filters={"label": f"io.streamctl.cluster={cluster}"})]
        finally:
            nested.close()
    return out


def test_restore_point_into_a_new_cluster_on_the_same_hosts(cli: Cli, swarm: DindSwarm) -> None:
    assert "sums" in STORY, "needs the backed-up cluster of the test before"
    source = _ctx(cli.path)
    with source.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO genres (genre_id, name) VALUES (32000, 'after-first')")
        nodes_before = citus_recovery.node_addresses(conn)
    later = platform_sums(source)
    assert later != STORY["sums"]
    into = f"{cli.cluster}-r"
    restored_file = Path(cli.path).parent / f"{into}.yaml"
    try:
        done = cli.json("restore", "--point", "first", "--into", into)
        copy = Cli(restored_file, backend="swarm", env=cli.env, timeout=900)
        assert done["cluster"] == into and set(done["nodes"]) == NODES, done
        assert done["verify"]["exit_code"] == 0, done["verify"]
        restored = _ctx(restored_file)
        assert platform_sums(restored) == STORY["sums"]  # exactly the point's rows, none of the later ones
        assert done["redis"] and _redis_keys(restored_file) == SET_KEYS, done  # the set's keys, not the later one
        assert restored.store.read()["swarm_pins"]["redis"]["hostname"] == "db-3"
        assert not _secrets(swarm, f"{into}-redis-part"), _secrets(swarm, into)
        assert _redis_keys(cli.path) == {"before": "in the set", "after": "not in the set"}  # the original's
        with restored.pg_connect("coordinator") as conn:
            assert conn.execute("SELECT count(*) FROM genres WHERE name = 'after-first'").fetchone()[0] == 0
            # the catalog names the restored cluster's services, on the same hosts as the original's
            assert citus_recovery.node_addresses(conn) == [(h.replace(cli.cluster, into, 1), p)
                                                           for h, p in nodes_before]
        for node in NODES:
            assert restored.store.read()["swarm_pins"][node]["hostname"] == \
                source.store.read()["swarm_pins"][node]["hostname"]
        # the original: catalog and rows as they were, later rows included
        with source.pg_connect("coordinator") as conn:
            assert citus_recovery.node_addresses(conn) == nodes_before
        assert platform_sums(source) == later
        # archiving into its own stanzas; no restore service, network or repository left
        assert f"--stanza={into}-worker-1" in copy.sql("worker-1", "SHOW archive_command")
        assert not [n for n in services(swarm, into) if "restore" in n], services(swarm, into)
    finally:
        if restored_file.exists():
            down = Cli(restored_file, backend="swarm", env=cli.env, timeout=900).run("down", "--volumes", "--yes")
            assert down.returncode == 0, down.output
            restored_file.unlink()
    assert not services(swarm, into) and not _volumes(swarm, into)


def test_up_from_backup_brings_the_cluster_back_on_its_hosts(cli: Cli, swarm: DindSwarm) -> None:
    """Last: the original taken down with its volumes (the repository directory stays), then brought back
    from its set: the point's rows again, archiving into stanzas of a generation of its own."""
    assert "sums" in STORY, "needs the backed-up cluster of the first test"
    cli.ok("down", "--volumes", "--yes")
    # `down` returns once the manager no longer lists the removed overlay network (an `up` right after it
    # would find the network, not create it, and have its services refused)
    assert not _networks(swarm, f"{cli.cluster}-overlay")
    done = cli.json("up", "--from-backup", "first")
    assert done["verify"]["exit_code"] == 0, done["verify"]
    assert platform_sums(_ctx(cli.path)) == STORY["sums"]
    assert done["redis"] and _redis_keys(cli.path) == SET_KEYS, done
    command = cli.sql("worker-1", "SHOW archive_command")
    assert f"--stanza={cli.cluster}-g" in command, command
    assert not [n for n in services(swarm, cli.cluster) if "restore" in n], services(swarm, cli.cluster)
