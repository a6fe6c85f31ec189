"""`up` with the Citus layer on: workers registered, tables distributed and colocated, FDW joins work.

Runs when a Citus-enabled PostgreSQL is available (the local one, or STREAMCTL_TEST_PG_BINDIR)."""

from __future__ import annotations

import uuid

import pytest

from streamctl.names import DISTRIBUTED_TABLES, REFERENCE_TABLES

pytestmark = [pytest.mark.citus, pytest.mark.redis]


@pytest.fixture
def citus_cluster(make_cluster):
    c = make_cluster(citus=True, workers=2, replicas=1)
    c.up()
    return c


def test_workers_registered_and_active(citus_cluster) -> None:
    c = citus_cluster
    with c.ctx.pg_connect("coordinator") as conn:
        rows = conn.execute("SELECT nodeport, isactive FROM pg_dist_node WHERE groupid <> 0 ORDER BY 1").fetchall()
        stats = conn.execute("SHOW citus.enable_statistics_collection").fetchone()
    assert rows == sorted((w.port, True) for w in c.topology.nodes() if w.role.value == "worker")
    assert stats == ("off",)


def test_tables_distributed_colocated_and_reference(citus_cluster) -> None:
    c = citus_cluster
    with c.ctx.pg_connect("coordinator") as conn:
        rows = conn.execute("SELECT table_name::text, citus_table_type, distribution_column, colocation_id, "
                            "shard_count FROM citus_tables").fetchall()
    tables = {r[0]: r for r in rows}
    for name in DISTRIBUTED_TABLES:
        assert tables[name][1] == "distributed" and tables[name][2] == "content_id"
        assert tables[name][4] == c.topology.metadata.citus.shard_count
    assert len({tables[n][3] for n in DISTRIBUTED_TABLES}) == 1  # one colocation group
    for name in REFERENCE_TABLES:
        assert tables[name][1] == "reference"


def test_fdw_join_with_distributed_table_runs_on_coordinator(citus_cluster) -> None:
    c = citus_cluster
    uid, cid = str(uuid.uuid4()), str(uuid.uuid4())
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("INSERT INTO users VALUES (%s, 'citus-user', 'c@example.test', now())", (uid,))
        conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, duration_watched_seconds) "
                     "VALUES (%s, %s, now(), 120)", (uid, cid))
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, 'Dune', 'movie')",
                     (cid,))
        rows = conn.execute("SELECT c.title FROM analytics.user_watch_history h JOIN content_metadata c "
                            "ON c.content_id = h.content_id WHERE h.user_id = %s ORDER BY h.watched_at DESC",
                            (uid,)).fetchall()
    assert rows == [("Dune",)]


def test_second_up_is_a_noop_with_citus(citus_cluster) -> None:
    assert not citus_cluster.up().changed
