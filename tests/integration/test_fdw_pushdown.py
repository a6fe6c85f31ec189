"""Every query that reads through the FDW filters on the remote side: EXPLAIN (VERBOSE) shows the filter
(or the limit) in the Remote SQL, so no query pulls a whole foreign table across to return a few rows.

Runs on a plain coordinator, and with Citus when a Citus-enabled PostgreSQL is available."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import sql

from streamctl.gateway.routers import content, users
from streamctl.verify import fdw

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(params=["plain", pytest.param("citus", marks=pytest.mark.citus)])
def cluster(request: pytest.FixtureRequest, make_cluster: Any) -> Any:
    citus = request.param == "citus"  # the citus marker skips it (or fails it in CI) when Citus is absent
    c = make_cluster(citus=citus, workers=1 if citus else 0, replicas=0)
    c.up()
    return c


def _remote_sql(plan: Any) -> Iterator[tuple[str, str]]:
    """(foreign relation, Remote SQL) of every foreign scan in a JSON plan, Citus's inner plans included."""
    if isinstance(plan, dict):
        if "Remote SQL" in plan:
            yield plan.get("Relation Name", "?"), plan["Remote SQL"]
        for value in plan.values():
            yield from _remote_sql(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _remote_sql(value)


def _explain(conn: Any, query: sql.Composable, params: Any = None) -> list[tuple[str, str]]:
    row = conn.execute(sql.SQL("EXPLAIN (VERBOSE, FORMAT JSON) ") + sql.Composed([query]), params).fetchone()
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return list(_remote_sql(plan))


def test_fdw_queries_filter_on_the_remote_side(cluster: Any) -> None:
    c = cluster
    uid, cid = uuid.uuid4(), uuid.uuid4()
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("INSERT INTO users VALUES (%s, 'u', 'u@example.test', now())", (uid,))
        conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, duration_watched_seconds) "
                     "SELECT %s, %s, now() - make_interval(mins => i), 60 FROM generate_series(1, 30) i",
                     (uid, cid))
    schema = c.topology.fdw.schema_name
    history, user_table = sql.Identifier(schema, "user_watch_history"), sql.Identifier(schema, "users")
    now = datetime.now(UTC)
    cases: dict[str, tuple[sql.Composable, Any, str]] = {
        "verify fdw.join": (sql.SQL(fdw.HISTORY_JOIN).format(schema=sql.Identifier(schema)), None, "user_id ="),
        "watch stats": (sql.SQL(content.WATCH_STATS_SQL).format(history=history), (cid,), "content_id ="),
        "user exists": (users.user_exists_query(user_table), (uid,), "user_id ="),
        "user ids": (users.user_ids_query(user_table, False, 101), None, "LIMIT"),
        "user ids after": (users.user_ids_query(user_table, True, 101), (uid,), "user_id >"),
        "history": (users.history_query(history, "", 51), {"user": uid}, "user_id ="),
        "history after": (users.history_query(history, users.AFTER, 51),
                          {"user": uid, "at": now, "hid": 10}, "user_id ="),
    }
    with c.ctx.pg_connect("coordinator") as conn:
        for name, (query, params, narrowing) in cases.items():
            scans = _explain(conn, query, params)
            assert scans, f"{name}: no foreign scan in the plan"
            for relation, remote in scans:
                assert narrowing in remote or "LIMIT" in remote, f"{name}: {relation} read whole: {remote}"
        # and the queries answer: the verify check finds the user's rows with the remote filter
        rows = conn.execute(sql.SQL(fdw.HISTORY_JOIN).format(schema=sql.Identifier(schema))).fetchall()
    assert len(rows) == 30  # the only user is the check's user: all of their history, titled or not
