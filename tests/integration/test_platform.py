"""`up` configures a working platform on real PostgreSQL: schema, replication, FDW; idempotent, resumable."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from streamctl.errors import StepError
from streamctl.names import PUBLICATION, SCHEMA_VERSION_TABLE, subscription_name
from streamctl.services.postgres import schema_files
from tests.support.platform import add_user, wait_for_row

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HISTORY_WITH_TITLES = """
    SELECT h.watched_at, c.title
    FROM analytics.user_watch_history h
    JOIN content_metadata c ON c.content_id = h.content_id
    WHERE h.user_id = %s
    ORDER BY h.watched_at DESC
"""


def catalog_snapshot(c: Any) -> dict[str, Any]:
    """Counts of every object `up` creates, per node: a second `up` must not change any of them."""
    snap: dict[str, Any] = {}
    queries = {
        "publications": "SELECT count(*) FROM pg_publication",
        "subscriptions": "SELECT count(*) FROM pg_subscription",
        "slots": "SELECT count(*) FROM pg_replication_slots",
        "roles": "SELECT count(*) FROM pg_roles",
        "servers": "SELECT count(*) FROM pg_foreign_server",
        "mappings": "SELECT count(*) FROM pg_user_mappings",
        "foreign_tables": "SELECT count(*) FROM pg_foreign_table",
        "tables": "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        "indexes": "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'",
        "constraints": "SELECT count(*) FROM pg_constraint",
        "schema_versions": f"SELECT count(*) FROM {SCHEMA_VERSION_TABLE}",
    }
    for node in c.topology.nodes():
        if not node.is_postgres:
            continue
        with c.ctx.pg_connect(node.name) as conn:
            snap[node.name] = {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}  # type: ignore[index]
    return snap


def test_user_on_primary_reaches_replica_and_fdw(make_cluster) -> None:
    c = make_cluster(replicas=1)
    c.up()
    uid = add_user(c)
    assert wait_for_row(c, "analytics-replica-1", "SELECT username FROM users WHERE user_id = %s", (uid,))
    with c.ctx.pg_connect("coordinator") as conn:
        row = conn.execute("SELECT username FROM analytics.users WHERE user_id = %s", (uid,)).fetchone()
    assert row == (f"u{uid[:8]}",)


def test_watch_history_join_runs_on_the_coordinator(make_cluster) -> None:
    c = make_cluster(replicas=0)
    c.up()
    uid = add_user(c)
    content = [str(uuid.uuid4()) for _ in range(3)]
    with c.ctx.pg_connect("coordinator") as conn:
        for i, cid in enumerate(content):
            conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, %s, 'movie')",
                         (cid, f"Title {i}"))
    with c.ctx.pg_connect("analytics-primary") as conn:
        for i, cid in enumerate(content):
            conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, duration_watched_seconds)"
                         " VALUES (%s, %s, now() - make_interval(hours => %s), 60)", (uid, cid, i))
    with c.ctx.pg_connect("coordinator") as conn:
        rows = conn.execute(HISTORY_WITH_TITLES, (uid,)).fetchall()
    assert [r[1] for r in rows] == ["Title 0", "Title 1", "Title 2"]


def test_schema_tables_publication_and_subscription(make_cluster) -> None:
    c = make_cluster(replicas=1)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {SCHEMA_VERSION_TABLE} ORDER BY 1")]
        foreign = {r[0] for r in conn.execute(
            "SELECT foreign_table_name FROM information_schema.foreign_tables "
            "WHERE foreign_table_schema = 'analytics'")}
    assert {"content_metadata", "content_genres", "content_cast_crew", "trending_daily", "genres",
            "cast_crew"} <= tables
    assert versions == [f.version for f in schema_files("metadata")]
    assert foreign == {"users", "user_watch_history"}
    with c.ctx.pg_connect("analytics-primary") as conn:
        published = {r[0] for r in conn.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
                                                (PUBLICATION,))}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = "
                                              "'user_watch_history'")}
        wal_level = conn.execute("SHOW wal_level").fetchone()
        repl = conn.execute("SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = "
                            "'streamctl_replicator'").fetchone()
    assert published == {"users", "user_watch_history"}
    assert {"user_watch_history_user_time_idx", "user_watch_history_content_idx"} <= indexes
    assert wal_level == ("logical",)
    assert repl == (True, False)
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        states = conn.execute("SELECT srsubstate FROM pg_subscription_rel").fetchall()
        sub = conn.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s",
                           (subscription_name("analytics-replica-1"),)).fetchone()
    assert sorted(states) == [("r",), ("r",)] and sub == (True,)


def test_replication_and_fdw_roles_are_confined(make_cluster) -> None:
    """The FDW role reads but cannot write; pg_hba admits the replication role only from the replicas."""
    import psycopg

    c = make_cluster(replicas=1)
    c.up()
    with c.ctx.pg_connect("analytics-primary") as conn:
        hba = conn.execute("SELECT database, user_name, address, auth_method FROM pg_hba_file_rules").fetchall()
    rules = [(r[0], r[1], r[2], r[3]) for r in hba]
    assert (["analytics_db"], ["streamctl_replicator"], "127.0.0.1", "scram-sha-256") in rules
    assert (["all"], ["streamctl_replicator"], "all", "reject") in rules
    secrets = c.ctx.secrets
    ep = c.ctx.endpoint("analytics-primary")
    with psycopg.connect(host=ep.host, port=ep.port, dbname="analytics_db", user="streamctl_fdw_reader",
                         password=secrets["fdw_password"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO users (user_id, username, email) VALUES (gen_random_uuid(), 'x', 'y')")
        conn.execute("SET default_transaction_read_only = off")  # the role itself must not be able to write
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO users (user_id, username, email) VALUES (gen_random_uuid(), 'x', 'y')")


def test_second_up_leaves_catalogs_unchanged(make_cluster) -> None:
    c = make_cluster(replicas=2)
    c.up()
    before = catalog_snapshot(c)
    result = c.up()
    assert not result.changed
    assert catalog_snapshot(c) == before
    assert before["analytics-primary"]["slots"] == 2


def test_replica_added_later_is_provisioned_and_subscribed(make_cluster) -> None:
    c = make_cluster(replicas=1)
    c.up()
    uid = add_user(c)
    data = yaml.safe_load(c.path.read_text())
    from tests.support.ports import free_port

    data["analytics"]["replicas"].append({"name": "analytics-replica-2", "port": free_port()})
    c.path.write_text(yaml.safe_dump(data))
    result = c.up()
    actions = {s.node.name: s.action.value for s in result.node_steps}
    assert actions["analytics-replica-2"] == "create" and actions["analytics-replica-1"] == "noop"
    assert wait_for_row(c, "analytics-replica-2", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    assert not c.up().changed


def test_subscription_skips_the_copy_only_while_the_primary_stays_empty(make_cluster, monkeypatch) -> None:
    """Empty tables on both sides: the subscription starts without an initial copy. A row the primary
    commits around the subscription's creation (a writer racing `up`) makes it start over with the copy,
    and the replica ends with exactly the primary's rows."""
    from streamctl.replication import catalog

    calls: list[bool] = []
    real = catalog.create_subscription
    c = make_cluster(replicas=1, fdw=False, redis=False)
    uid = str(uuid.uuid4())

    def racing(conn: Any, name: str, conninfo: str, copy_data: bool = True) -> None:
        calls.append(copy_data)
        real(conn, name, conninfo, copy_data)
        if len(calls) == 1:
            with c.ctx.pg_connect("analytics-primary") as primary:
                primary.execute("INSERT INTO users VALUES (%s, 'racer', 'racer@example.test', now())", (uid,))

    monkeypatch.setattr(catalog, "create_subscription", racing)
    c.up()
    assert calls == [False, True]  # no copy at first; the row seen after the slot existed: again, copying
    assert wait_for_row(c, "analytics-replica-1", "SELECT username FROM users WHERE user_id = %s", (uid,))
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)
    monkeypatch.undo()
    uid2 = add_user(c)  # and it streams what comes next
    assert wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid2,))
    assert not c.up().changed


def test_fdw_can_read_from_a_replica(make_cluster) -> None:
    c = make_cluster(replicas=1, fdw={"enabled": True, "source": "analytics-replica-1"})
    c.up()
    uid = add_user(c)
    wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    with c.ctx.pg_connect("coordinator") as conn:
        opts = conn.execute("SELECT srvoptions FROM pg_foreign_server").fetchone()[0]  # type: ignore[index]
        assert f"port={c.ctx.endpoint('analytics-replica-1').port}" in opts
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (1,)


def test_failed_step_names_node_and_step_and_next_up_resumes(make_cluster, monkeypatch) -> None:
    """A step that fails halfway (injected: the FDW step loses its connection) stops `up` with the node
    and step named; everything before it stays done and the next `up` finishes the rest."""
    import streamctl.runner as runner_module
    from streamctl.services import configuration_steps
    from streamctl.steps import ConfigStep

    def failing_fdw(ctx: Any, backend: Any) -> list[ConfigStep]:
        def boom() -> None:
            raise ConnectionError("server closed the connection unexpectedly")

        return [ConfigStep(s.node, s.name, s.pending, boom) if s.name == "fdw" else s
                for s in configuration_steps(ctx, backend)]

    c = make_cluster(replicas=1)
    monkeypatch.setattr(runner_module, "configuration_steps", failing_fdw)
    with pytest.raises(StepError) as info:
        c.up()
    assert info.value.message == ("coordinator: step 'fdw' failed: server closed the connection unexpectedly")
    assert "run `streamctl up` again" in (info.value.hint or "")
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        assert conn.execute("SELECT count(*) FROM pg_subscription").fetchone() == (1,)
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM pg_foreign_table").fetchone() == (0,)
    monkeypatch.undo()
    result = c.up()
    changed = [(n, s) for n, s, _ in result.config_changes]
    assert changed[0] == ("coordinator", "fdw")  # nothing before the failed step ran again
    assert all(s == "gateway role" for _, s in changed[1:])  # the steps after it, never reached
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (0,)
    assert not c.up().changed


def test_gateway_role_reads_everything_it_serves_and_writes_nothing(make_cluster) -> None:
    import psycopg

    c = make_cluster(replicas=1)
    c.up()
    add_user(c)
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SELECT count(*) FROM content_metadata").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (1,)  # its own mapping
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO genres VALUES (1, 'x')")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO genres VALUES (1, 'x')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM streamctl_schema_version")
    with psycopg.connect(c.ctx.gateway_conninfo("analytics-replica-1"), autocommit=True) as conn:
        wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users", ())
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)
        assert conn.execute("SELECT pg_has_role('pg_monitor', 'member')").fetchone() == (True,)
