"""postgres_fdw on the coordinator: foreign tables count what their source counts, and the join runs."""

from __future__ import annotations

from functools import partial

from psycopg import sql

from streamctl.config.model import Role, Topology
from streamctl.context import ClusterContext
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed, skipped

COUNTS = "fdw.counts"
JOIN = "fdw.join"

# "A user's watch history with content titles, newest first": history comes through the FDW, titles from
# the (possibly distributed) catalogue, in one statement. Neither side is read whole:
# - the user is picked by a scalar subquery (an InitPlan) whose value reaches postgres_fdw as a
#   parameter, so the remote SQL filters on user_id (joining a CTE instead pulled the whole history);
# - the titles are narrowed to the history's content ids before the outer join (an outer join whose
#   inner side is a distributed table makes Citus pull that whole table to the coordinator).
# The CTEs are materialised so Citus plans the foreign part locally.
HISTORY_JOIN = """
WITH history AS MATERIALIZED (
         SELECT h.content_id, h.watched_at, h.duration_watched_seconds
         FROM {schema}.user_watch_history h
         WHERE h.user_id = (SELECT user_id FROM {schema}.users ORDER BY user_id LIMIT 1)
         ORDER BY h.watched_at DESC LIMIT 50),
     titled AS MATERIALIZED (
         SELECT c.content_id, c.title FROM content_metadata c
         WHERE c.content_id IN (SELECT content_id FROM history))
SELECT h.watched_at, t.title, h.duration_watched_seconds
FROM history h LEFT JOIN titled t ON t.content_id = h.content_id
ORDER BY h.watched_at DESC
"""


def skip_reason(t: Topology) -> str | None:
    if not t.fdw.enabled:
        return "fdw.enabled is false"
    if not t.analytics.enabled:
        return "analytics.enabled is false: the FDW has no source"
    return None


def _coordinator(ctx: ClusterContext) -> str:
    node = ctx.first(Role.COORDINATOR)
    assert node is not None
    return node.name


def check_counts(ctx: ClusterContext) -> list[CheckResult]:
    t = ctx.topology
    schema = t.fdw.schema_name

    def one(table: str) -> Verdict:
        count = sql.SQL("SELECT count(*) FROM {}").format
        with ctx.pg_connect(_coordinator(ctx), t.metadata.database) as conn:
            row = conn.execute(count(sql.Identifier(schema, table))).fetchone()
        with ctx.pg_connect(t.fdw.source, t.analytics.database) as conn:
            src = conn.execute(count(sql.Identifier(table))).fetchone()
        through, direct = int(row[0]) if row else -1, int(src[0]) if src else -1
        data = {"foreign_rows": through, "source_rows": direct, "source": t.fdw.source}
        if through != direct:
            return failed(f"{schema}.{table} counts {through} rows, {t.fdw.source} has {direct}", **data)
        return passed(f"{through} rows through {schema}.{table}, same as {t.fdw.source}", **data)

    return [guarded(COUNTS, f"{schema}.{table}", partial(one, table)) for table in t.fdw_tables]


def check_join(ctx: ClusterContext) -> list[CheckResult]:
    t = ctx.topology

    def body() -> Verdict:
        query = sql.SQL(HISTORY_JOIN).format(schema=sql.Identifier(t.fdw.schema_name))
        with ctx.pg_connect(_coordinator(ctx), t.metadata.database) as conn:
            rows = conn.execute(query).fetchall()
        titled = sum(1 for r in rows if r[1] is not None)
        return passed(f"watch history joined with titles: {len(rows)} rows, {titled} with a title",
                      rows=len(rows), titled=titled)

    missing = [tb for tb in ("users", "user_watch_history") if tb not in t.fdw_tables]
    if missing:
        return [guarded(JOIN, "coordinator", lambda: skipped(f"fdw.tables leaves out {', '.join(missing)}"))]
    return [guarded(JOIN, _coordinator(ctx), body)]
