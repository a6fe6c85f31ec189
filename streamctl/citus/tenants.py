"""Hot titles: Citus's tenant statistics (citus_stat_tenants, collected when citus.stat_tenants_track is
'all') and, always available, rows per distribution value across the colocated tables."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import Connection, sql


def tenant_queries(conn: Connection[Any], colocation_id: int, limit: int) -> dict[str, tuple[int, int]]:
    """content_id -> (queries, reads) over the current and last period; empty when not collected."""
    try:
        rows = conn.execute(
            "SELECT tenant_attribute, sum(query_count_in_this_period + query_count_in_last_period)::bigint, "
            "sum(read_count_in_this_period + read_count_in_last_period)::bigint FROM citus_stat_tenants(true) "
            "WHERE colocation_id = %s GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s", (colocation_id, limit)).fetchall()
    except psycopg.errors.UndefinedFunction:  # a Citus before 11.3
        return {}
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


def rows_per_key(conn: Connection[Any], tables: list[str], column: str, limit: int,
                 keys: list[str] | None = None) -> list[tuple[str, int, dict[str, int]]]:
    """The keys with the most rows over `tables` (or just `keys`): (key, total, rows per table)."""
    parts = [sql.SQL("SELECT {c}::text AS k, {t} AS tbl, count(*) AS n FROM {i} GROUP BY 1").format(
        c=sql.Identifier(column), t=sql.Literal(t), i=sql.Identifier(t)) for t in tables]
    where = sql.SQL("WHERE k = ANY(%s)") if keys is not None else sql.SQL("")
    query = sql.SQL("SELECT k, tbl, n FROM ({u}) x {w}").format(u=sql.SQL(" UNION ALL ").join(parts), w=where)
    per: dict[str, dict[str, int]] = {}
    for k, tbl, n in conn.execute(query, (keys,) if keys is not None else ()).fetchall():
        per.setdefault(str(k), {})[str(tbl)] = int(n)
    ranked = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return [(k, sum(v.values()), v) for k, v in ranked[:limit]]


def titles(conn: Connection[Any], keys: list[str]) -> dict[str, str]:
    """content_id -> title, for labelling hot titles."""
    if not keys:
        return {}
    try:
        rows = conn.execute("SELECT content_id::text, title FROM content_metadata "
                            "WHERE content_id::text = ANY(%s)", (keys,)).fetchall()
    except psycopg.Error:
        return {}
    return {str(r[0]): str(r[1]) for r in rows}
