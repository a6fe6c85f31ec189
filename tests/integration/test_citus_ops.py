"""Citus operations on a real Citus cluster: placement and distribution checks, skew, key lookup, and
scaling up then down with the data intact. Skipped (with the reason) where Citus is not installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.citus.shards import inspect_shards, locate_key
from streamctl.config.load import load_topology
from streamctl.errors import ExitCode, PreflightError
from streamctl.scale import scale_workers
from streamctl.verify.result import Status
from streamctl.verify.runner import run_checks
from tests.support.cluster import running
from tests.support.engines import require
from tests.support.platform import insert_titles

ROWS = 4000


@pytest.fixture(scope="module")
def citus_cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Coordinator + 2 workers, 8 shards, 4,000 titles each with a genre (module-scoped: slow to make)."""
    require("postgres", "citus")
    with running(cluster="citusops", citus=True, workers=2, analytics=False, redis=False) as cluster:
        insert_titles(cluster, ROWS)
        yield cluster


def counts(cluster: Any) -> dict[str, int]:
    with cluster.ctx.pg_connect("coordinator") as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                for t in ("content_metadata", "content_genres", "genres")}


@pytest.mark.citus
def test_citus_checks_pass_on_a_healthy_cluster(citus_cluster: Any) -> None:
    report = run_checks(citus_cluster.ctx, ["citus"])
    assert report.exit_code is ExitCode.OK, [r for r in report.results if r.status is not Status.PASSED]
    by = {(r.check, r.target): r for r in report.results}
    assert by[("citus.workers", "worker-2")].status is Status.PASSED
    assert by[("citus.distribution", "content_metadata")].data["shard_count"] == 8
    assert by[("citus.distribution", "genres")].status is Status.PASSED
    assert by[("citus.skew", "content_metadata")].status is Status.PASSED
    assert by[("citus.skew", "trending_daily")].status is Status.SKIPPED  # empty: nothing to judge


@pytest.mark.citus
def test_shards_totals_and_placement(citus_cluster: Any) -> None:
    spreads = {s.table: s for s in inspect_shards(citus_cluster.ctx)}
    meta = spreads["content_metadata"]
    assert meta.rows == ROWS and meta.shard_count == 8
    assert sorted(n.node for n in meta.nodes) == ["worker-1", "worker-2"]
    assert sum(n.shards for n in meta.nodes) == 8 and sum(n.rows for n in meta.nodes) == ROWS
    assert spreads["genres"].kind == "reference" and spreads["genres"].rows == 2
    out = citus_cluster.cli.run("shards", "--json")
    assert out.returncode == 0, out.output
    assert {t["table"] for t in json.loads(out.stdout)["tables"]} >= {"content_metadata", "genres"}
    bars = citus_cluster.cli.run("shards", "--table", "content_metadata")
    assert bars.returncode == 0 and "█" in bars.stdout and "worker-2" in bars.stdout


@pytest.mark.citus
def test_key_lookup_names_the_shard_that_holds_the_row(citus_cluster: Any) -> None:
    with citus_cluster.ctx.pg_connect("coordinator") as conn:
        key = str(conn.execute("SELECT content_id FROM content_metadata LIMIT 1").fetchone()[0])  # type: ignore[index]
        holders = conn.execute("SELECT shardid, result FROM run_command_on_shards('content_metadata', "
                               "$$SELECT count(*) FROM %s WHERE content_id = '" + key + "'$$)").fetchall()
    holding = [int(s) for s, n in holders if n == "1"]
    loc = locate_key(citus_cluster.ctx, "content_metadata", key)
    assert holding == [loc.shard_id] and len(loc.nodes) == 1 and loc.nodes[0].startswith("worker-")
    out = citus_cluster.cli.run("shards", "-t", "content_metadata", "-k", key)
    assert out.returncode == 0 and f"shard {loc.shard_id}" in out.stdout


@pytest.mark.citus
def test_skew_beyond_the_limit_fails_naming_the_table(citus_cluster: Any) -> None:
    with citus_cluster.ctx.pg_connect("coordinator") as conn:
        hot = conn.execute("SELECT content_id FROM content_metadata LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO trending_daily (date, content_id, views) "
                     "SELECT DATE '2020-01-01' + i, %s, 1 FROM generate_series(1, 2000) i", (hot,))
    try:
        report = run_checks(citus_cluster.ctx, ["citus.skew"])
        skew = {r.target: r for r in report.results}
        hot_table = skew["trending_daily"]
        # one hot title: too few distinct values to judge shards one by one, but its node stands out
        assert hot_table.status is Status.FAILED and "busiest node" in hot_table.detail
        assert "largest shard" in hot_table.detail
        assert f"one title causes it: {hot}" in hot_table.detail and "shards isolate" in hot_table.detail
        assert hot_table.data["hot_title"] == str(hot)
        assert skew["trending_daily"].data["shard_skew"] == pytest.approx(8.0)
        assert skew["content_metadata"].status is Status.PASSED
        assert report.exit_code is ExitCode.CHECK_FAILED
    finally:
        with citus_cluster.ctx.pg_connect("coordinator") as conn:
            conn.execute("DELETE FROM trending_daily")


@pytest.mark.citus
def test_few_titles_with_many_rows_each_is_not_called_skew(citus_cluster: Any) -> None:
    """40 titles, 60 rows each: on every node one shard holds 8 titles and three hold 4 (largest shard
    1.6x the mean, what hashing few values does), the nodes are even: that is not skew."""
    with citus_cluster.ctx.pg_connect("coordinator") as conn:
        rows = conn.execute(
            "SELECT c.content_id, s.shardid, s.nodeport FROM content_metadata c JOIN citus_shards s "
            "ON s.shardid = get_shard_id_for_distribution_column('content_metadata', c.content_id) "
            "ORDER BY s.nodeport, s.shardid, c.content_id").fetchall()
        by_node: dict[int, dict[int, list[Any]]] = {}
        for cid, shard, port in rows:
            by_node.setdefault(port, {}).setdefault(shard, []).append(cid)
        chosen = [cid for shards in by_node.values()
                  for i, ids in enumerate(shards.values()) for cid in ids[: 8 if i == 0 else 4]]
        assert len(chosen) == 40
        conn.execute("INSERT INTO trending_daily (date, content_id, views) SELECT DATE '2020-01-01' + d, c, 1 "
                     "FROM unnest(%s::uuid[]) c, generate_series(1, 60) d", (chosen,))
    try:
        result = {r.target: r for r in run_checks(citus_cluster.ctx, ["citus.skew"]).results}["trending_daily"]
        assert result.data["keys"] == 40 and result.data["rows"] == 2400
        assert result.data["shard_skew"] == pytest.approx(1.6) and result.data["node_skew"] == pytest.approx(1.0)
        assert result.status is Status.PASSED, result.detail
        assert "not judged one by one" in result.detail
    finally:
        with citus_cluster.ctx.pg_connect("coordinator") as conn:
            conn.execute("DELETE FROM trending_daily")


@pytest.mark.citus
def gateway_may_read(cluster: Any, table: str) -> bool:
    from streamctl.names import GATEWAY_USER

    with cluster.ctx.pg_connect("coordinator") as conn:
        row = conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (GATEWAY_USER, table)).fetchone()
    return bool(row and row[0])


@pytest.mark.citus
def test_scale_up_then_down_keeps_the_data(citus_cluster: Any) -> None:
    from streamctl.names import GATEWAY_USER

    before = counts(citus_cluster)
    events: list[Any] = []
    # A difference on the coordinator that `up` would converge: scale only touches the workers it adds.
    with citus_cluster.ctx.pg_connect("coordinator") as conn:
        conn.execute(f"REVOKE SELECT ON genres FROM {GATEWAY_USER}")
    assert not gateway_may_read(citus_cluster, "genres")
    grown = scale_workers(citus_cluster.ctx, citus_cluster.backend, 3, emit=events.append)
    assert grown.added == ["worker-3"] and grown.moves > 0 and grown.topology_updated
    assert not gateway_may_read(citus_cluster, "genres"), "scale configured the coordinator"
    assert not any(e.node == "coordinator" and e.step not in ("rebalance", "drain") for e in events
                   if e.kind in ("begin", "done")), [e for e in events if e.node == "coordinator"]
    with citus_cluster.ctx.pg_connect("coordinator") as conn:
        conn.execute(f"GRANT SELECT ON genres TO {GATEWAY_USER}")
    assert any(e.step == "rebalance" and "shard moves done" in e.detail for e in events)
    assert load_topology(citus_cluster.path).metadata.workers.count == 3
    citus_cluster.reload()
    spread = {s.table: s for s in inspect_shards(citus_cluster.ctx)}["content_metadata"]
    assert {n.node: n.shards for n in spread.nodes}["worker-3"] > 0
    assert counts(citus_cluster) == before
    assert run_checks(citus_cluster.ctx, ["nodes", "citus"]).exit_code is ExitCode.OK

    shrunk = scale_workers(citus_cluster.ctx, citus_cluster.backend, 2)
    assert shrunk.removed == ["worker-3"]
    assert load_topology(citus_cluster.path).metadata.workers.count == 2
    citus_cluster.reload()
    spread = {s.table: s for s in inspect_shards(citus_cluster.ctx)}["content_metadata"]
    assert sorted(n.node for n in spread.nodes) == ["worker-1", "worker-2"]
    assert counts(citus_cluster) == before
    assert run_checks(citus_cluster.ctx, ["nodes", "citus"]).exit_code is ExitCode.OK
    assert not citus_cluster.ctx.store.node_dir("worker-3").exists()


@pytest.mark.postgres
def test_scale_refuses_without_citus(make_cluster: Any) -> None:
    cluster = make_cluster(analytics=False, redis=False)
    cluster.up()
    with pytest.raises(PreflightError, match="Citus is disabled"):
        scale_workers(cluster.ctx, cluster.backend, 3)
    out = cluster.cli.run("shards")
    assert out.returncode == PreflightError.exit_code != 0, out.stderr  # not a crash
    assert "Citus is disabled" in out.stderr


@pytest.mark.citus
def test_database_errors_in_shard_operations_are_clear_errors(citus_cluster: Any) -> None:
    """Citus refusing a move or a node removal surfaces as ShardOperationError (exit 5), nothing changed."""
    from streamctl.citus import placement
    from streamctl.citus.nodes import worker_address
    from streamctl.citus.placement import ShardOperationError
    from streamctl.citus.rebalance import unregister
    from streamctl.events import ignore

    ctx = citus_cluster.ctx
    before = counts(citus_cluster)
    worker = ctx.topology.node("worker-2")
    assert worker is not None
    with ctx.pg_connect("coordinator") as conn:
        shard = conn.execute("SELECT shardid, nodename, nodeport FROM citus_shards "
                             "WHERE table_name = 'content_metadata'::regclass LIMIT 1").fetchone()
        assert shard is not None
        with pytest.raises(ShardOperationError) as moved:  # to a node Citus does not know
            placement.move(conn, shard[0], (shard[1], shard[2]), ("127.0.0.1", 1), "block_writes")
        assert moved.value.exit_code == ExitCode.RUNTIME == 5
        assert f"Citus did not move shard {shard[0]}" in moved.value.message
        with pytest.raises(ShardOperationError) as removed:  # still holds placements: not drained
            unregister(conn, {worker_address(ctx, worker): "worker-2"}, ignore)
        assert removed.value.exit_code == ExitCode.RUNTIME
        assert "Citus did not remove worker-2" in removed.value.message
        assert removed.value.hint is not None and "drain" in removed.value.hint
        active = conn.execute("SELECT count(*) FROM pg_dist_node WHERE nodeport = %s AND isactive",
                              (worker_address(ctx, worker)[1],)).fetchone()
    assert active == (1,)
    assert counts(citus_cluster) == before
