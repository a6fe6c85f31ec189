"""Backups and point-in-time restore on the local backend with Citus (pgBackRest, a directory repository).

One cluster goes through the whole story, in order: seed, full backup s1, more rows and deletions, an
incremental s2, restore s1 by its point into a new cluster (every table on every node holds exactly the
rows of s1, compared with verify's own count+checksum SQL; the original's catalog and rows unchanged),
`--to` resolution, `up --from-backup` in another directory, the refusals, and last (it breaks s2) a
missing WAL segment. S3 repositories are validated and rendered, not exercised (no object store here).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backup.pgbackrest import BackupError, PgBackRest, repository_path
from streamctl.backup.restore import Selection, restore_into, up_from_backup
from streamctl.backup.take import list_sets, take_backup
from streamctl.citus import recovery as citus_recovery
from streamctl.errors import NotFoundError, RefusedError
from streamctl.names import FDW_USER, REPLICATION_USER, subscription_name
from streamctl.readiness import Readiness
from streamctl.replication import catalog
from streamctl.replication.catchup import wait_for_replicas
from streamctl.verify.runner import run_checks
from tests.support.backup import backed_up_story, platform_sums, restore_over_a_gap
from tests.support.cli import streamctl
from tests.support.cluster import LocalCluster, topology_dict, traversable_tmpdir
from tests.support.platform import add_user, wait_for_row

pytestmark = [pytest.mark.citus, pytest.mark.redis,
              pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed "
                                 "(./scripts/install --test installs it)")]

def make(directory: Path, cluster: str, repo: Path) -> LocalCluster:
    data = topology_dict(cluster=cluster, citus=True, workers=2, replicas=1, tls=False,
                         backup={"repository": {"path": str(repo)}, "archive_timeout": 30})
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return LocalCluster(path)


@pytest.fixture(scope="module")
def story() -> Any:
    directory = traversable_tmpdir()
    name = f"bk{os.getpid() % 100000}"
    c = make(directory, name, directory / "repo")
    made = [c]
    state: dict[str, Any] = {"cluster": c, "dir": directory, "made": made}
    try:
        c.up()
        backed_up_story(c, state)
        yield state
    finally:
        for cluster in reversed(made):
            try:
                cluster.reload()
                cluster.down(volumes=True)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        shutil.rmtree(directory, ignore_errors=True)


def test_backup_list_names_both_sets_with_points_and_sizes(story) -> None:
    sets = list_sets(story["tool"])
    assert [s.label for s in sets] == ["s1", "s2"]
    s1, s2 = (s.to_json() for s in sets)
    assert s1["type"] == "full" and s2["type"] == "incr"
    assert s1["restore_points"][0]["name"] == "s1" and s1["restorable"] and s1["redis"]
    assert {n["node"] for n in s1["nodes"]} == {"coordinator", "worker-1", "worker-2", "analytics-primary"}
    # the incremental after a small change copies only the files it touched
    assert 0 < s2["repo_size"] < s1["repo_size"] / 3, (s1["repo_size"], s2["repo_size"])
    assert story["sums_s1"] != story["sums_later"]  # the later changes are real
    archiving = run_checks(story["cluster"].ctx, ["backup"])
    assert [r.status.value for r in archiving.results] == ["passed"] * 4, [r.detail for r in archiving.results]


def test_restore_point_into_new_cluster_holds_exactly_the_points_rows(story) -> None:
    c = story["cluster"]
    result = restore_into(c.ctx, c.backend, Selection(point="s1"), f"{c.topology.cluster}-r")
    assert result.topology_file is not None and result.topology_file.parent == c.path.parent
    restored = LocalCluster(result.topology_file)
    story["made"].append(restored)
    story["restored"] = restored
    assert result.verify is not None and int(result.verify.exit_code) == 0, [
        r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
    assert restored.topology.metadata.coordinator.port != c.topology.metadata.coordinator.port
    assert platform_sums(restored.ctx) == story["sums_s1"]
    with restored.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM genres WHERE name = 'after-s1'").fetchone()[0] == 0
        ports = {p for _, p in citus_recovery.node_addresses(conn)}
    t = restored.topology
    assert ports == {t.metadata.coordinator.port, t.metadata.workers.port, t.metadata.workers.port + 1}
    # the original: catalog and rows as they were (later rows included), nothing restored into it
    with c.ctx.pg_connect("coordinator") as conn:
        assert citus_recovery.node_addresses(conn) == story["nodes_before"]
    assert platform_sums(c.ctx) == story["sums_later"]
    # the restored cluster archives into its own stanzas
    stanzas = {st.name for st in PgBackRest(restored.ctx, restored.backend).stanzas()}
    assert stanzas and all(s.startswith(f"{t.cluster}-") for s in stanzas)
    with restored.ctx.pg_connect("worker-1") as conn:
        command = conn.execute("SHOW archive_command").fetchone()[0]
    assert f"--stanza={t.cluster}-worker-1" in command
    # and Redis came back from the set's snapshot
    assert result.redis and restored.ctx.redis().dbsize() == c.ctx.redis().dbsize() > 0


SYNC_WORKER = "logical replication table synchronization worker"  # the initial copy, in the replica's log


def test_restored_replica_is_a_copy_of_its_primary_and_streams_later_rows(story) -> None:
    """The restore copied the replica from the analytics primary's backup and made it a replica: `up`
    subscribed it through the slot made before the primary took connections, without the initial copy;
    verify's checksums find its tables equal to the primary's, and rows written after the restore reach it."""
    restored = story["restored"]
    ctx = restored.ctx
    replica_node = restored.topology.node("analytics-replica-1")
    assert not [x for x in restored.backend.logs(replica_node, 0) if SYNC_WORKER in x]  # no initial copy
    with ctx.pg_connect("analytics-replica-1") as replica:
        assert catalog.restored_at(replica) is None  # the mark went with the subscription it stood for
        assert catalog.published_tables(replica) is None  # the primary's publication did not come along
        assert replica.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
        assert replica.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                               ([REPLICATION_USER, FDW_USER],)).fetchone()[0] == 0
        sub = catalog.subscription(replica, subscription_name("analytics-replica-1"))
    assert sub is not None and sub.enabled and sub.slot == subscription_name("analytics-replica-1")
    report = run_checks(ctx, ["replication"])
    assert {r.status.value for r in report.results} == {"passed"}, [r.to_json() for r in report.results]
    assert any(r.check == "replication.data" for r in report.results)
    uid = add_user(restored)
    with ctx.pg_connect("analytics-primary") as conn:
        conn.execute("DELETE FROM user_watch_history WHERE ctid IN (SELECT ctid FROM user_watch_history LIMIT 3)")
    assert wait_for_row(restored, "analytics-replica-1", "SELECT user_id FROM users WHERE user_id = %s", (uid,))
    wait_for_replicas(ctx, ctx.topology.analytics.tables, 30)
    report = run_checks(ctx, ["replication.data"])
    assert {r.status.value for r in report.results} == {"passed"}, [r.to_json() for r in report.results]


def test_a_replica_not_restored_with_its_primary_gets_the_initial_copy(story) -> None:
    """A replica made afresh subscribes with the full copy, even with an unused slot of its name waiting on
    the primary: only a replica the restore marked skips the copy."""
    restored = story["restored"]
    ctx = restored.ctx
    replica_node = restored.topology.node("analytics-replica-1")
    restored.backend.remove(replica_node, volumes=True)
    with ctx.pg_connect("analytics-primary") as conn:
        slot = subscription_name("analytics-replica-1")
        Readiness("the slot released", lambda: catalog.slot_active(conn, slot) is False, 30, 0.1).wait()
        rows = {t: catalog.row_count(conn, t) for t in ctx.topology.analytics.tables}
    assert all(rows.values()), rows
    restored.up()
    assert [x for x in restored.backend.logs(replica_node, 0) if SYNC_WORKER in x]
    with ctx.pg_connect("analytics-replica-1") as replica:
        assert {t: catalog.row_count(replica, t) for t in rows} == rows
        # a mark whose slot is not on the primary (dropped with the subscription): emptied, then the copy
        catalog.drop_subscription(replica, slot)
        catalog.mark_restored(replica, "0/1000")
    restored.up()
    with ctx.pg_connect("analytics-replica-1") as replica:
        assert catalog.restored_at(replica) is None
        assert {t: catalog.row_count(replica, t) for t in rows} == rows
    report = run_checks(ctx, ["replication"])
    assert {r.status.value for r in report.results} == {"passed"}, [r.to_json() for r in report.results]


def test_timestamp_resolves_to_the_latest_restore_point_at_or_before_it(story) -> None:
    sets = list_sets(story["tool"])
    s1_time = datetime.fromisoformat(sets[0].point_time)
    s2_time = datetime.fromisoformat(sets[1].point_time)
    chosen, how = Selection(to=s1_time + (s2_time - s1_time) / 2).choose(sets)
    assert chosen.label == "s1" and "restore point 's1'" in how
    assert Selection(to=s2_time).choose(sets)[0].label == "s2"
    with pytest.raises(RefusedError, match="before the WAL range"):
        Selection(to=s1_time - timedelta(hours=1)).choose(sets)
    with pytest.raises(RefusedError, match="future"):
        Selection(to=datetime.now(UTC) + timedelta(days=1)).choose(sets)
    with pytest.raises(NotFoundError, match="no restore point 'nope'"):
        Selection(point="nope").choose(sets)
    with pytest.raises(NotFoundError, match="no backup set 'nope'"):
        Selection(label="nope").choose(sets)


def test_up_from_backup_makes_a_fresh_cluster_from_the_repository(story) -> None:
    c = story["cluster"]
    other = traversable_tmpdir()
    try:
        fresh = make(other, c.topology.cluster, repository_path(c.ctx))  # same name, as CI would, new ports
        story["made"].append(fresh)
        result = up_from_backup(fresh.ctx, fresh.backend, "s1")
        assert result.verify is not None and int(result.verify.exit_code) == 0
        assert platform_sums(fresh.ctx) == story["sums_s1"]
        gen = fresh.ctx.store.read()["backup_generation"]
        assert all(gen in st.name for st in PgBackRest(fresh.ctx, fresh.backend).stanzas())
        fresh.down(volumes=True)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_in_place_restore_is_refused_without_confirmation(story) -> None:
    c = story["cluster"]
    proc = streamctl("restore", "-f", str(c.path), "--point", "s1", "--in-place")
    assert proc.returncode == 10, proc.stderr
    assert "`restore --in-place` stops cluster" in proc.stderr and "add --yes" in proc.stderr
    proc = streamctl("restore", "-f", str(c.path), "--point", "s1", "--in-place", "--into", "other", "--yes")
    assert proc.returncode == 2, proc.stderr  # two destinations: a usage error
    assert platform_sums(c.ctx) == story["sums_later"]


def test_backup_while_a_node_is_down_fails_naming_it(story) -> None:
    c = story["cluster"]
    c.backend.stop(c.topology.node("worker-2"))
    try:
        with pytest.raises(BackupError, match="worker-2"):
            take_backup(story["tool"], "incr", "while-down")
    finally:
        c.up()
    assert "while-down" not in {s.label for s in list_sets(story["tool"])}


def test_missing_wal_segment_fails_clearly_and_leaves_nothing(story) -> None:
    c = story["cluster"]
    into = f"{c.topology.cluster}-gap"
    restore_over_a_gap(c, story, into)


def test_cli_backup_list_json_and_unknown_names(story) -> None:
    c = story["cluster"]
    proc = streamctl("backup", "list", "-f", str(c.path), "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {s["label"]: s for s in json.loads(proc.stdout)}
    assert listed["s1"]["restore_points"][0]["name"] == "s1" and listed["s2"]["type"] == "incr"
    proc = streamctl("restore", "-f", str(c.path), "--label", "nope")
    assert proc.returncode == 7 and "no backup set 'nope'" in proc.stderr, proc.stderr
    proc = streamctl("restore", "-f", str(c.path), "--to", "2001-01-01T00:00:00Z")
    assert proc.returncode == 10 and "before the WAL range" in proc.stderr, proc.stderr
    assert not list(c.path.parent.glob("*-restored*.yaml"))


def test_cli_backup_diff_with_json_and_up_from_backup_refused_on_existing_nodes(story) -> None:
    c = story["cluster"]
    proc = streamctl("backup", "-f", str(c.path), "--type", "diff", "--label", "s3", "--json")
    assert proc.returncode == 0, proc.stderr
    taken = json.loads(proc.stdout)
    assert taken["label"] == "s3" and taken["type"] == "diff" and taken["restorable"]
    assert "restore point s3" in proc.stderr  # progress on stderr, JSON alone on stdout
    proc = streamctl("backup", "-f", str(c.path), "--label", "s3")
    assert proc.returncode == 10 and "already exists" in proc.stderr, proc.stderr
    proc = streamctl("up", "-f", str(c.path), "--from-backup", "s1")
    assert proc.returncode == 10 and "already exist" in proc.stderr, proc.stderr


def _aside(c: LocalCluster) -> list[Path]:
    return sorted(c.ctx.store.root.rglob("data.before-restore-*"))


def test_in_place_restore_that_fails_puts_every_nodes_data_back(story) -> None:
    """s2 cannot be reached (worker-1's WAL after it was removed by the test above): the restore fails
    naming it, and every node's data is back as it was: `up` starts the same rows."""
    c = story["cluster"]
    before = platform_sums(c.ctx)
    proc = streamctl("restore", "-f", str(c.path), "--label", "s2", "--in-place", "--yes")
    assert proc.returncode == 5 and "worker-1" in proc.stderr and "is missing" in proc.stderr, proc.stderr
    assert "back as it was" in proc.stderr, proc.stderr
    assert _aside(c) == []
    c.up()
    assert platform_sums(c.ctx) == before


def test_in_place_restore_brings_the_cluster_itself_back_to_the_point(story) -> None:
    c = story["cluster"]
    proc = streamctl("restore", "-f", str(c.path), "--point", "s1", "--in-place", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["cluster"] == c.topology.cluster and result["verify"]["ok"], result["verify"]
    c.reload()
    assert platform_sums(c.ctx) == story["sums_s1"]  # every node, the replica's subscribed tables included
    with c.ctx.pg_connect("coordinator") as conn:  # same ports: Citus's catalog names the same nodes
        assert citus_recovery.node_addresses(conn) == story["nodes_before"]
    kept = [Path(p) for p in result["kept_aside"]]
    assert kept and sorted(kept) == _aside(c) and all((p / "PG_VERSION").exists() or "redis" in str(p)
                                                         for p in kept)
    # archiving goes on, on the new timeline, into the same stanzas
    archiving = run_checks(c.ctx, ["backup"])
    assert [r.status.value for r in archiving.results] == ["passed"] * 4, [r.detail for r in archiving.results]
    for p in kept:
        shutil.rmtree(p)
