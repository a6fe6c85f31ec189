"""Shard operations on a real Citus cluster: plans that change nothing, moves and rebalances that keep
every row (counts and checksums), a hot title isolated with its colocated rows, and bad input refused with
nothing changed. Skipped (with the reason) where Citus is not installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.errors import ExitCode
from streamctl.verify.runner import run_checks
from tests.support.cli import streamctl
from tests.support.cluster import running, write_topology
from tests.support.engines import require
from tests.support.platform import insert_titles

ROWS = 2000
HOT_ROWS = 600

pytestmark = pytest.mark.citus


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Coordinator + 2 workers, 8 shards; titles with a genre each, and one hot title with many rows."""
    require("postgres", "citus")
    with running(cluster="shardops", citus=True, workers=2, analytics=False, redis=False) as c:
        insert_titles(c, ROWS)
        with c.ctx.pg_connect("coordinator") as conn:
            hot = conn.execute("SELECT content_id FROM content_metadata ORDER BY title LIMIT 1").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO trending_daily (date, content_id, views) SELECT DATE '2020-01-01' + i, "
                         f"%s, i FROM generate_series(1, {HOT_ROWS}) i", (hot,))
        c.hot = str(hot)
        yield c


def placements(c: Any) -> list[tuple[Any, ...]]:
    with c.ctx.pg_connect("coordinator") as conn:
        return conn.execute("SELECT table_name::text, shardid, nodename, nodeport FROM citus_shards "
                            "ORDER BY 1, 2, 3, 4").fetchall() + conn.execute(
            "SELECT nodeid, nodename, nodeport, isactive, shouldhaveshards FROM pg_dist_node ORDER BY 1").fetchall()


def sums(c: Any) -> dict[str, tuple[int, str]]:
    """Rows and a content checksum per table, computed here independently of streamctl's own check."""
    with c.ctx.pg_connect("coordinator") as conn:
        out = {}
        for t in ("content_metadata", "content_genres", "trending_daily", "genres"):
            row = conn.execute(f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x").fetchone()
            out[t] = (int(row[0]), str(row[1]))  # type: ignore[index]
        return out


def worker1_shard(c: Any) -> int:
    with c.ctx.pg_connect("coordinator") as conn:
        port = c.ctx.endpoint("worker-1").internal_port
        return int(conn.execute("SELECT min(shardid) FROM citus_shards WHERE table_name = "
                                "'content_metadata'::regclass AND nodeport = %s", (port,)).fetchone()[0])  # type: ignore[index]


def test_move_then_rebalance_keep_every_row_and_dry_run_changes_nothing(cluster: Any) -> None:
    before = sums(cluster)
    shard = worker1_shard(cluster)
    moved = cluster.cli.run("shards", "move", str(shard), "--to", "worker-2", "--json")
    assert moved.returncode == 0, moved.output
    data = json.loads(moved.stdout)
    assert data["moved"] and data["source"] == "worker-1" and data["target"] == "worker-2"
    assert len(data["shards"]) == 4  # the colocated shards moved with it
    assert sums(cluster) == before
    # Now 3 groups on worker-1, 5 on worker-2: Citus plans a move back; the dry run changes nothing.
    snapshot = placements(cluster)
    plan = cluster.cli.run("shards", "rebalance", "--dry-run", "--json")
    assert plan.returncode == 0, plan.output
    moves = json.loads(plan.stdout)["moves"]
    assert moves and {m["source"] for m in moves} == {"worker-2"} and {m["target"] for m in moves} == {"worker-1"}
    assert {m["table"] for m in moves} >= {"content_metadata", "content_genres"}
    assert sum(m["rows"] for m in moves if m["table"] == "content_metadata") > 0
    grow = cluster.cli.run("scale", "--workers", "3", "--dry-run", "--json")
    assert grow.returncode == 0, grow.output
    grown = json.loads(grow.stdout)
    assert grown["provision"] == ["worker-3"] and {m["target"] for m in grown["moves"]} == {"worker-3"}
    assert placements(cluster) == snapshot
    text = cluster.cli.run("shards", "rebalance", "--dry-run")
    assert "worker-2" in text.stdout and "nothing was changed" in text.stdout
    assert placements(cluster) == snapshot

    done = cluster.cli.run("shards", "rebalance", "--parallel", "2", "--transfer-mode", "block_writes", "--json")
    assert done.returncode == 0, done.output
    assert json.loads(done.stdout)["moves"] == len({m["shard_id"] for m in moves if m["table"] == moves[0]["table"]})
    assert sums(cluster) == before
    again = cluster.cli.run("shards", "rebalance", "--dry-run", "--json")
    assert json.loads(again.stdout)["moves"] == []
    status = cluster.cli.run("shards", "rebalance", "status", "--json")
    assert json.loads(status.stdout)["state"] == "finished"
    with cluster.ctx.pg_connect("coordinator") as conn:  # executors were raised for the job only
        assert conn.execute("SHOW citus.max_background_task_executors_per_node").fetchone()[0] == "1"  # type: ignore[index]
    cancel = cluster.cli.run("shards", "rebalance", "cancel")
    assert cancel.returncode == ExitCode.NOT_FOUND and "no rebalance is running" in cancel.output


def test_isolating_a_hot_title_leaves_it_alone_with_its_colocated_rows(cluster: Any) -> None:
    before = sums(cluster)
    hot = cluster.cli.run("shards", "hot", "-n", "3", "--json")
    assert hot.returncode == 0, hot.output
    top = json.loads(hot.stdout)["titles"][0]
    assert top["content_id"] == cluster.hot and top["rows"] == HOT_ROWS + 2  # trending + metadata + genre
    out = cluster.cli.run("shards", "isolate", "--table", "content_metadata", "--key", cluster.hot, "--json")
    assert out.returncode == 0, out.output
    res = json.loads(out.stdout)
    assert res["isolated"] and res["node"] in ("worker-1", "worker-2")
    assert res["shards"]["content_metadata"] == {"shard": res["shard_id"], "rows": 1, "key_rows": 1}
    assert res["shards"]["trending_daily"]["rows"] == HOT_ROWS == res["shards"]["trending_daily"]["key_rows"]
    assert res["shards"]["content_genres"]["rows"] == 1
    assert sums(cluster) == before
    with cluster.ctx.pg_connect("coordinator") as conn:
        alone = conn.execute("SELECT shardminvalue = shardmaxvalue FROM pg_dist_shard WHERE shardid = %s",
                             (res["shard_id"],)).fetchone()[0]  # type: ignore[index]
    assert alone
    again = cluster.cli.run("shards", "isolate", "-t", "content_metadata", "-k", cluster.hot, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["isolated"] is False
    report = run_checks(cluster.ctx, ["citus.distribution"])  # the split shards are accounted for
    assert report.exit_code is ExitCode.OK, [r.detail for r in report.results]


@pytest.mark.parametrize(("args", "code", "message"), [
    (("shards", "move", "999999", "--to", "worker-2"), ExitCode.NOT_FOUND, "shard 999999 does not exist"),
    (("shards", "move", "{shard}", "--to", "worker-9"), ExitCode.NOT_FOUND, "unknown worker 'worker-9'"),
    (("shards", "isolate", "-t", "content_metadata", "-k", "not-a-uuid"), ExitCode.REFUSED, "not a valid uuid"),
    (("shards", "isolate", "-t", "genres", "-k", "1"), ExitCode.REFUSED, "not a distributed one"),
    (("shards", "isolate", "-t", "no_such_table", "-k", "1"), ExitCode.NOT_FOUND, "not a Citus table"),
    (("shards", "rebalance", "--transfer-mode", "fast"), ExitCode.USAGE, "'fast' is not one of"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(cluster: Any, args: tuple[str, ...], code: int,
                                                        message: str) -> None:
    snapshot = placements(cluster)
    argv = [a.format(shard=worker1_shard(cluster)) for a in args]
    out = cluster.cli.run(*argv)
    assert out.returncode == code, out.output
    assert message in out.output
    assert placements(cluster) == snapshot


def test_group_options_before_a_subcommand_reach_it(cluster: Any, tmp_path: Any) -> None:
    """`shards -f FILE --json hot` acts on FILE's cluster, not on the topology.yaml of the current directory
    (here a decoy naming a cluster that does not exist)."""
    write_topology(tmp_path, cluster="decoy-not-up")
    run = ["shards", "-f", str(cluster.path), "--json"]
    hot = streamctl(*run, "hot", "-n", "1", cwd=tmp_path)
    assert hot.returncode == 0, hot.stdout + hot.stderr
    assert json.loads(hot.stdout)["titles"][0]["content_id"] == cluster.hot  # the JSON of FILE's cluster
    plan = streamctl(*run, "rebalance", "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "moves" in json.loads(plan.stdout)
    own = streamctl(*run, "hot", "-n", "1", "-f", str(tmp_path / "topology.yaml"), cwd=tmp_path)
    assert own.returncode == 4 and "Citus is disabled" in own.stderr, own.stderr  # its own -f wins


def test_reference_table_shard_cannot_be_moved(cluster: Any) -> None:
    with cluster.ctx.pg_connect("coordinator") as conn:
        row = conn.execute("SELECT min(shardid) FROM citus_shards WHERE table_name = 'genres'::regclass").fetchone()
    shard = row[0]  # type: ignore[index]
    snapshot = placements(cluster)
    out = cluster.cli.run("shards", "move", str(shard), "--to", "worker-2")
    assert out.returncode == ExitCode.REFUSED and "reference table" in out.output
    assert placements(cluster) == snapshot


def test_hot_uses_citus_tenant_statistics_once_collected(cluster: Any) -> None:
    """Last in this module: from here on the cluster has tenant statistics, so `hot` ranks by queries."""
    with cluster.ctx.pg_connect("coordinator") as conn:
        key = str(conn.execute("SELECT content_id FROM content_metadata ORDER BY title DESC LIMIT 1").fetchone()[0])  # type: ignore[index]
        conn.execute("SET citus.stat_tenants_track = 'all'")
        for _ in range(50):  # more than any other test queried a single title
            conn.execute("SELECT title FROM content_metadata WHERE content_id = %s", (key,))
    out = cluster.cli.run("shards", "hot", "-n", "3", "--json")
    assert out.returncode == 0, out.output
    res = json.loads(out.stdout)
    assert res["source"] == "citus_stat_tenants"
    assert res["titles"][0]["content_id"] == key and res["titles"][0]["queries"] >= 50
