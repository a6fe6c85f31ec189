"""Nodes removed from the topology (orphans) on real local clusters: `up` and `status` name them, `down`
never leaves one running, `--remove-orphans` removes them with their replication slot (or, for a Citus
worker, after draining its shards), and the primary's slots are bounded and cleaned up."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from streamctl import names
from streamctl.backends.base import NodeState
from streamctl.config.model import Node
from streamctl.replication import catalog
from streamctl.verify.result import Status
from streamctl.verify.runner import run_checks
from tests.support.cli import streamctl
from tests.support.cluster import LocalCluster, save_topology, topology_dict, traversable_tmpdir
from tests.support.external import USER, HandCluster

GONE = "analytics-replica-2"
SLOT = names.subscription_name(GONE)


def drop_replica(c: LocalCluster, name: str) -> None:
    data = yaml.safe_load(c.path.read_text())
    data["analytics"]["replicas"] = [r for r in data["analytics"]["replicas"] if r["name"] != name]
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))
    c.reload()


def orphan(c: LocalCluster, name: str) -> Node:
    return next(o for o in c.ctx.orphans() if o.name == name)


def with_an_orphan(make_cluster: Any, cluster: str) -> tuple[LocalCluster, Node]:
    """A local cluster with two replicas, up; then the second one taken out of the topology: an orphan."""
    c = make_cluster(cluster=cluster, replicas=2, fdw=False, redis=False)
    c.up()
    drop_replica(c, GONE)
    return c, orphan(c, GONE)


def slot(c: LocalCluster, name: str) -> bool | None:
    """Whether the slot is active on the primary; None when it does not exist."""
    with c.ctx.pg_connect("analytics-primary") as conn:
        return catalog.slot_active(conn, name)


@pytest.mark.postgres
def test_removed_replica_is_named_then_removed_with_its_slot(make_cluster: Any) -> None:
    c = make_cluster(cluster="orph-rm", replicas=2, fdw=False, redis=False)
    c.up()
    with c.ctx.pg_connect("analytics-primary") as conn:
        assert conn.execute("SHOW max_slot_wal_keep_size").fetchone() == ("4GB",)  # WAL kept for a slot is bounded
    assert slot(c, SLOT) is True
    drop_replica(c, GONE)

    # `up` names the orphan and leaves it as it is: still running, still streaming from its slot.
    out = streamctl("up", "-f", str(c.path), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["orphans"] == [GONE] and result["removed_orphans"] == []
    assert c.backend.observe(orphan(c, GONE)).state is NodeState.RUNNING
    assert slot(c, SLOT) is True
    text = streamctl("up", "-f", str(c.path))
    assert text.returncode == 0 and f"orphans (no longer in the topology, left as they are): {GONE}" in text.stdout
    plan = json.loads(streamctl("up", "-f", str(c.path), "--dry-run", "--json").stdout)
    assert {"node": GONE, "action": "orphan"}.items() <= next(r for r in plan if r["node"] == GONE).items()

    status = streamctl("status", "-f", str(c.path), "--json")
    assert status.returncode == 0, status.stdout
    rows = {r["name"]: r for r in json.loads(status.stdout)["nodes"]}
    assert rows[GONE]["orphan"] is True and rows[GONE]["state"] == "running"
    assert "--remove-orphans" in rows[GONE]["detail"] and rows["analytics-replica-1"]["orphan"] is False
    stray = next(r for r in run_checks(c.ctx, ["replication.slots"]).results if r.target == SLOT)
    assert stray.status is Status.FAILED and stray.data["active"] is True and stray.data["owned"] is False
    assert "--remove-orphans" in stray.detail and stray.data["retained_bytes"] >= 0

    # --remove-orphans: subscription and slot dropped, server stopped, data and state entry gone.
    removed = streamctl("up", "-f", str(c.path), "--remove-orphans")
    assert removed.returncode == 0, removed.stderr
    assert f"removed orphans: {GONE}" in removed.stdout
    assert slot(c, SLOT) is None
    assert GONE not in c.ctx.store.endpoints() and c.ctx.orphans() == []
    assert not (c.backend.home.nodes / GONE).exists()
    rows = {r["name"] for r in json.loads(streamctl("status", "-f", str(c.path), "--json").stdout)["nodes"]}
    assert GONE not in rows
    assert slot(c, names.subscription_name("analytics-replica-1")) is True  # the kept replica is untouched


@pytest.mark.postgres
def test_down_stops_orphans_and_up_drops_their_inactive_slot(make_cluster: Any) -> None:
    c, gone = with_an_orphan(make_cluster, "orph-down")

    c.down()  # no server of the cluster is left running, the orphan included
    assert c.backend.observe(gone).state is NodeState.STOPPED
    assert all(c.backend.observe(n).state is NodeState.STOPPED for n in c.topology.nodes())
    assert GONE in c.ctx.store.endpoints()  # still known: `status` and `down --volumes` find it

    result = c.up()  # the orphan stays stopped; its slot, now inactive, is dropped and that is said
    assert result.orphans == [GONE]
    assert c.backend.observe(gone).state is NodeState.STOPPED
    assert slot(c, SLOT) is None
    dropped = [ch for _, step, ch in result.config_changes if step == "stray slots"]
    assert dropped and SLOT in dropped[0][0] and "bytes of WAL" in dropped[0][0]
    rows = {r["name"]: r for r in json.loads(streamctl("status", "-f", str(c.path), "--json").stdout)["nodes"]}
    assert rows[GONE]["state"] == "stopped" and rows[GONE]["orphan"] is True

    c.down(volumes=True)  # the orphan's data goes with the rest
    assert not (c.backend.home.nodes / GONE).exists()
    assert c.backend.observe(gone).state is NodeState.MISSING


@pytest.mark.postgres
def test_down_remove_orphans_removes_only_them(make_cluster: Any) -> None:
    c, gone = with_an_orphan(make_cluster, "orph-downrm")
    out = streamctl("down", "-f", str(c.path), "--remove-orphans")
    assert out.returncode == 0, out.stderr
    assert c.backend.observe(gone).state is NodeState.MISSING
    assert GONE not in c.ctx.store.endpoints()
    assert all(c.backend.observe(n).state is NodeState.STOPPED for n in c.topology.nodes())
    c.up()
    assert slot(c, SLOT) is None and slot(c, names.subscription_name("analytics-replica-1")) is True


@pytest.mark.postgres
@pytest.mark.citus
def test_orphan_worker_is_drained_before_it_is_removed(make_cluster: Any) -> None:
    c = make_cluster(cluster="orph-citus", citus=True, workers=2, analytics=False, redis=False)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) SELECT "
                     "gen_random_uuid(), 'title ' || i, 'movie' FROM generate_series(1, 500) i")
        before = conn.execute("SELECT count(*), sum(hashtext(title)) FROM content_metadata").fetchone()
    data = yaml.safe_load(c.path.read_text())
    data["metadata"]["workers"]["count"] = 1
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))
    c.reload()

    result = c.up()
    assert result.orphans == ["worker-2"]
    worker2 = orphan(c, "worker-2")
    assert c.backend.observe(worker2).state is NodeState.RUNNING  # still holds shards: left as it is

    c.down()  # stopped with the rest; its shards cannot be moved while the coordinator is down: refused
    refused = streamctl("up", "-f", str(c.path), "--remove-orphans")
    assert refused.returncode == 10, refused.stderr
    assert "cannot remove orphan workers worker-2" in refused.stderr
    assert c.backend.observe(worker2).state is NodeState.STOPPED and "worker-2" in c.ctx.store.endpoints()
    c.up()
    assert c.backend.observe(worker2).state is NodeState.STOPPED  # `up` never starts an orphan again...
    removed = c.runner.up(remove_orphans=True)  # ...but --remove-orphans does, to move its shards off
    assert removed.removed_orphans == ["worker-2"] and removed.orphans == []
    assert c.backend.observe(worker2).state is NodeState.MISSING
    with c.ctx.pg_connect("coordinator") as conn:
        nodes = conn.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0").fetchall()
        assert nodes == [("127.0.0.1", c.topology.node("worker-1").port)]  # type: ignore[union-attr]
        assert conn.execute("SELECT count(*), sum(hashtext(title)) FROM content_metadata").fetchone() == before


@pytest.mark.postgres
def test_down_volumes_with_an_external_primary_leaves_no_slot_on_it() -> None:
    """The primary outlives the cluster's replicas: `down --skip-external --volumes` drops their slots."""
    import secrets
    import shutil

    hand = HandCluster(secrets.token_urlsafe(16))
    directory = traversable_tmpdir()
    try:
        primary = hand.server()
        with primary.connect() as conn:
            conn.execute("CREATE DATABASE analytics_db")
        data = topology_dict(cluster="orph-ext", replicas=1, fdw=False, redis=False, tls=False,
                             external={"host": "127.0.0.1", "user": USER, "password": hand.password})
        data["analytics"]["primary"] = {"backend": "external", "port": primary.port}
        c = LocalCluster(save_topology(directory, data))
        up = streamctl("up", "-f", str(c.path), "--configure")
        assert up.returncode == 0, up.stderr
        with primary.connect() as conn:
            assert catalog.slot_active(conn, names.subscription_name("analytics-replica-1")) is True
        down = streamctl("down", "-f", str(c.path), "--skip-external", "--volumes", "--yes")
        assert down.returncode == 0, down.stderr
        with primary.connect() as conn:
            assert catalog.slot_active(conn, names.subscription_name("analytics-replica-1")) is None
    finally:
        hand.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.docker
def test_docker_orphan_replica_is_named_then_removed_with_its_slot(make_docker_cluster: Any) -> None:
    from tests.support.docker import docker_client

    c = make_docker_cluster(replicas=2, fdw=False, redis=False)
    client = docker_client()
    try:
        c.up()
        with c.ctx.pg_connect("analytics-primary") as conn:
            assert conn.execute("SHOW max_slot_wal_keep_size").fetchone() == ("4GB",)
        drop_replica(c, GONE)
        result = c.up()
        assert result.orphans == [GONE] and slot(c, SLOT) is True
        assert client.containers.get(f"{c.cluster}-{GONE}").status == "running"
        rows = {r["name"]: r for r in json.loads(streamctl("status", "-f", str(c.path), "--json").stdout)["nodes"]}
        assert rows[GONE]["orphan"] is True and rows[GONE]["state"] == "running"

        removed = c.runner.up(remove_orphans=True)  # ...but --remove-orphans does, to move its shards off
        assert removed.removed_orphans == [GONE] and slot(c, SLOT) is None
        assert not client.containers.list(all=True, filters={"name": f"{c.cluster}-{GONE}"})
        assert not client.volumes.list(filters={"name": f"{c.cluster}-{GONE}-data"})
    finally:
        client.close()


@pytest.mark.postgres
def test_renamed_replica_on_the_same_port_needs_its_orphan_removed_first(make_cluster: Any) -> None:
    c = make_cluster(cluster="orph-rename", replicas=2, fdw=False, redis=False)
    c.up()
    data = yaml.safe_load(c.path.read_text())
    data["analytics"]["replicas"][1]["name"] = "analytics-replica-b"  # same port as before
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))

    blocked = streamctl("up", "-f", str(c.path))
    assert blocked.returncode == 4, blocked.stderr
    assert f"is already in use by orphan {GONE} (no longer in the topology)" in blocked.stderr
    assert "--remove-orphans" in blocked.stderr
    plan = json.loads(streamctl("up", "-f", str(c.path), "--dry-run", "--remove-orphans", "--json").stdout)
    assert next(r for r in plan if r["node"] == GONE)["action"] == "remove"

    done = streamctl("up", "-f", str(c.path), "--remove-orphans", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed_orphans"] == [GONE]
    c.reload()
    assert slot(c, SLOT) is None
    assert slot(c, names.subscription_name("analytics-replica-b")) is True


@pytest.mark.postgres
def test_wal_a_forgotten_slot_holds_is_bounded(make_cluster: Any) -> None:
    """With analytics.max_slot_wal_keep_size, a slot nobody reads stops holding WAL past the bound: PostgreSQL
    invalidates it at a checkpoint, and verify says its replica must be rebuilt."""
    c = make_cluster(cluster="orph-bound", replicas=0, fdw=False, redis=False)
    data = yaml.safe_load(c.path.read_text())
    data["analytics"]["max_slot_wal_keep_size"] = "1MB"
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))
    c.up()
    ghost = names.subscription_name("analytics-replica-old")
    with c.ctx.pg_connect("analytics-primary") as conn:
        assert conn.execute("SHOW max_slot_wal_keep_size").fetchone() == ("1MB",)
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (ghost,))
        for n in range(4):  # a few WAL segments past the slot
            conn.execute("INSERT INTO users SELECT gen_random_uuid(), %s || i, %s || i || '@example.org', now() "
                         "FROM generate_series(1, 2000) i", (f"u{n}-", f"u{n}-"))
            conn.execute("SELECT pg_switch_wal()")
        conn.execute("CHECKPOINT")
        status = conn.execute("SELECT wal_status, restart_lsn FROM pg_replication_slots WHERE slot_name = %s",
                              (ghost,)).fetchone()
    assert status == ("lost", None)  # it keeps no WAL any more
    found = next(r for r in run_checks(c.ctx, ["replication.slots"]).results if r.target == ghost)
    assert found.status is Status.FAILED and "invalidated" in found.detail
    assert found.data["wal_status"] == "lost" and found.data["retained_bytes"] == 0
    c.up()  # inactive and no replica owns it: dropped
    with c.ctx.pg_connect("analytics-primary") as conn:
        assert catalog.slot_active(conn, ghost) is None
