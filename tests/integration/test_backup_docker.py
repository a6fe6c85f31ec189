"""Backups and point-in-time restore on the Docker backend with Citus (pgBackRest inside the nodes'
containers, a directory repository on the engine's host mounted into them).

One cluster goes through the story, in order: seed, full backup s1, later rows and deletions, an
incremental s2; restore s1 by its point into a new cluster beside the running one (every table on every
node holds exactly the rows of s1, compared with verify's own count+checksum SQL; the original's catalog
and rows unchanged); a missing WAL segment (s2's) fails clearly and leaves no container or volume of the
new cluster; `restore --in-place` of s2 then fails the same way and puts every volume back, and of s1
brings the cluster itself back to the point, its volumes kept aside; last, with the original gone,
`up --from-backup` brings the same cluster back from the
repository alone (as a CI job would).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streamctl.backup.pgbackrest import PgBackRest, repository_path
from streamctl.backup.restore import Selection, restore_into, up_from_backup
from streamctl.backup.take import list_sets
from streamctl.citus import recovery as citus_recovery
from streamctl.verify.runner import run_checks
from tests.support.backup import backed_up_story, platform_sums, restore_over_a_gap
from tests.support.cli import streamctl
from tests.support.cluster import save_topology, topology_dict, traversable_tmpdir
from tests.support.docker import DockerCluster, cluster_resources, remove_cluster_resources, unique_cluster, use_image
from tests.support.images import ensure_citus_image, ensure_test_image

pytestmark = [pytest.mark.docker, pytest.mark.citus]

EMPTY = {"containers": [], "volumes": [], "networks": []}


def make(directory: Path, cluster: str, repo: Path) -> DockerCluster:
    citus = ensure_citus_image()
    data = use_image(topology_dict(cluster=cluster, backend="docker", citus=True, workers=2, replicas=1, tls=False,
                                   backup={"repository": {"path": str(repo)}, "archive_timeout": 30}),
                     ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus
    return DockerCluster(save_topology(directory, data))


@pytest.fixture(scope="module")
def story() -> Any:
    directory = traversable_tmpdir()
    c = make(directory, unique_cluster(), directory / "repo")
    names = [c.cluster]
    state: dict[str, Any] = {"cluster": c, "dir": directory, "names": names, "dirs": [directory]}
    try:
        c.up()
        backed_up_story(c, state)
        yield state
    finally:
        for name in names:
            remove_cluster_resources(name)
        for d in state["dirs"]:
            shutil.rmtree(d, ignore_errors=True)


def test_backup_runs_in_the_containers_and_lists_both_sets(story) -> None:
    c = story["cluster"]
    sets = list_sets(story["tool"])
    assert [s.label for s in sets] == ["s1", "s2"]
    s1, s2 = (s.to_json() for s in sets)
    assert s1["restore_points"][0]["name"] == "s1" and s1["restorable"] and s2["type"] == "incr"
    assert {n["node"] for n in s1["nodes"]} == {"coordinator", "worker-1", "worker-2", "analytics-primary"}
    assert 0 < s2["repo_size"] < s1["repo_size"] / 3, (s1["repo_size"], s2["repo_size"])
    assert story["sums_s1"] != story["sums_later"]
    # the repository is on the engine's host, written by the containers' postgres user
    assert (repository_path(c.ctx) / "backup" / f"{c.cluster}-coordinator").is_dir()
    archiving = run_checks(c.ctx, ["backup"])
    assert [r.status.value for r in archiving.results] == ["passed"] * 4, [r.detail for r in archiving.results]


def test_restore_point_into_new_cluster_holds_exactly_the_points_rows(story) -> None:
    c = story["cluster"]
    into = f"{c.cluster}-r"
    story["names"].append(into)
    result = restore_into(c.ctx, c.backend, Selection(point="s1"), into)
    assert result.topology_file is not None and result.topology_file.parent == c.path.parent
    restored = DockerCluster(result.topology_file)
    try:
        assert result.verify is not None and int(result.verify.exit_code) == 0, [
            r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
        assert platform_sums(restored.ctx) == story["sums_s1"]
        # the analytics replica came from its primary's backup too (verify compared its tables above)
        assert any(n.startswith("analytics-replica") for n in result.nodes), result.nodes
        with restored.ctx.pg_connect("coordinator") as conn:
            assert conn.execute("SELECT count(*) FROM genres WHERE name = 'after-s1'").fetchone()[0] == 0
            # the same node names on the restored cluster's own network: the catalog names its own nodes
            assert citus_recovery.node_addresses(conn) == story["nodes_before"]
        # the original: catalog and rows as they were (later rows included)
        with c.ctx.pg_connect("coordinator") as conn:
            assert citus_recovery.node_addresses(conn) == story["nodes_before"]
        assert platform_sums(c.ctx) == story["sums_later"]
        # the restored cluster archives into its own stanzas; no restore container is left
        with restored.ctx.pg_connect("worker-1") as conn:
            assert f"--stanza={into}-worker-1" in conn.execute("SHOW archive_command").fetchone()[0]
        assert not [n for n in cluster_resources(into)["containers"] if n.endswith("-restore")]
        archiving = run_checks(restored.ctx, ["backup"])
        assert [r.status.value for r in archiving.results] == ["passed"] * 4, [r.detail for r in archiving.results]
    finally:
        restored.down(volumes=True)
        result.topology_file.unlink()


def test_missing_wal_segment_fails_clearly_and_leaves_nothing(story) -> None:
    c = story["cluster"]
    into = f"{c.cluster}-gap"
    story["names"].append(into)
    restore_over_a_gap(c, story, into)
    assert cluster_resources(into) == EMPTY


def test_cli_lists_the_sets_and_refuses_in_place_without_yes(story) -> None:
    c = story["cluster"]
    proc = streamctl("backup", "list", "-f", str(c.path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert {s["label"] for s in json.loads(proc.stdout)} == {"s1", "s2"}
    proc = streamctl("restore", "-f", str(c.path), "--point", "s1", "--in-place")
    assert proc.returncode == 10, proc.stderr
    assert "`restore --in-place` stops cluster" in proc.stderr and "add --yes" in proc.stderr, proc.stderr
    assert platform_sums(c.ctx) == story["sums_later"]


def _aside_volumes(c: DockerCluster) -> list[str]:
    return sorted(v for v in cluster_resources(c.cluster)["volumes"] if "-before-restore-" in v)


def test_in_place_restore_that_fails_puts_every_volume_back(story) -> None:
    """s2 cannot be reached (worker-1's WAL after it was removed by the test above): the restore fails naming
    it, every volume is back under its name and no copy is left aside: `up` starts the same rows."""
    c = story["cluster"]
    before = platform_sums(c.ctx)
    proc = streamctl("restore", "-f", str(c.path), "--label", "s2", "--in-place", "--yes")
    assert proc.returncode == 5 and "worker-1" in proc.stderr and "is missing" in proc.stderr, proc.stderr
    assert "back as it was" in proc.stderr, proc.stderr
    assert _aside_volumes(c) == []
    assert not [n for n in cluster_resources(c.cluster)["containers"] if n.endswith("-restore")]
    c.up()
    assert platform_sums(c.ctx) == before


def test_in_place_restore_brings_the_cluster_itself_back_to_the_point(story) -> None:
    c = story["cluster"]
    proc = streamctl("restore", "-f", str(c.path), "--point", "s1", "--in-place", "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["cluster"] == c.cluster and result["verify"]["ok"], result["verify"]
    c.reload()
    assert platform_sums(c.ctx) == story["sums_s1"]
    with c.ctx.pg_connect("coordinator") as conn:  # same names on the same network: the catalog is right
        assert citus_recovery.node_addresses(conn) == story["nodes_before"]
    kept = sorted(k.split()[1] for k in result["kept_aside"])
    assert all(k == f"volume {k.split()[1]} (docker volume rm {k.split()[1]})" for k in result["kept_aside"])
    nodes = {"coordinator", "worker-1", "worker-2", "analytics-primary", "analytics-replica-1", "redis"}
    assert kept == _aside_volumes(c) and {v.split("-data-before-restore-")[0].removeprefix(f"{c.cluster}-")
                                          for v in kept} == nodes, kept
    # archiving goes on, on the new timeline, into the same stanzas
    archiving = run_checks(c.ctx, ["backup"])
    assert [r.status.value for r in archiving.results] == ["passed"] * 4, [r.detail for r in archiving.results]
    story["kept"] = kept


def test_up_from_backup_brings_the_cluster_back_from_the_repository(story) -> None:
    """The original is gone (volumes too); the same cluster, in another directory, from s1."""
    c = story["cluster"]
    repo = repository_path(c.ctx)
    c.down(volumes=True)
    assert cluster_resources(c.cluster)["volumes"] == []  # the in-place restore's aside volumes went too
    other = traversable_tmpdir()
    story["dirs"].append(other)
    fresh = make(other, c.cluster, repo)
    result = up_from_backup(fresh.ctx, fresh.backend, "s1")
    assert result.verify is not None and int(result.verify.exit_code) == 0, [
        r.to_json() for r in result.verify.results if r.status.value not in ("passed", "skipped")]
    assert platform_sums(fresh.ctx) == story["sums_s1"]
    gen = fresh.ctx.store.read()["backup_generation"]
    assert all(gen in st.name for st in PgBackRest(fresh.ctx, fresh.backend).stanzas())
    fresh.down(volumes=True)
