"""The bare SQL that establishes what verify's node, replication and FDW checks establish, by hand (no
chunking, no framework): shared by bench/verify.py and bench/verify_citus.py."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl import names
from streamctl.context import ClusterContext
from streamctl.verify.checksum import primary_key
from streamctl.verify.fdw import HISTORY_JOIN

REPLICA = "analytics-replica-1"


def bare_nodes(ctx: ClusterContext) -> None:
    for node in ctx.topology.nodes():
        with ctx.pg_connect(node.name, node.database) as conn:
            conn.execute("SELECT current_setting('server_version'), (SELECT count(*) FROM pg_stat_activity)")


def bare_replication(ctx: ClusterContext) -> None:
    """Subscription, table states and slot lag, then one whole-table digest per table on both sides."""
    t = ctx.topology
    tables = t.analytics.tables
    sub = names.subscription_name(REPLICA)
    with ctx.pg_connect(REPLICA) as r, ctx.pg_connect("analytics-primary") as p:
        p.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
                  (names.PUBLICATION,)).fetchall()
        r.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s", (sub,)).fetchone()
        r.execute("SELECT c.relname, sr.srsubstate FROM pg_subscription_rel sr JOIN pg_class c "
                  "ON c.oid = sr.srrelid").fetchall()
        p.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
                  "FROM pg_replication_slots WHERE slot_name = %s", (sub,)).fetchone()

    def digest(node: str) -> list[Any]:
        with ctx.pg_connect(node) as conn:
            out = []
            for tb in tables:
                key = ", ".join(primary_key(conn, tb))
                out.append(conn.execute(f"SELECT count(*), md5(string_agg({tb}::text, E'\\n' "
                                        f"ORDER BY {key})) FROM {tb}").fetchone())
            return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(digest, ["analytics-primary", REPLICA])
    assert a == b, "bare SQL sees a difference"


def bare_fdw_counts(ctx: ClusterContext) -> None:
    t = ctx.topology
    with ctx.pg_connect("coordinator") as c, ctx.pg_connect(t.fdw.source) as s:
        for tb in t.fdw_tables:
            c.execute(f"SELECT count(*) FROM {t.fdw.schema_name}.{tb}").fetchone()
            s.execute(f"SELECT count(*) FROM {tb}").fetchone()


def bare_fdw_join(ctx: ClusterContext) -> list[Any]:
    with ctx.pg_connect("coordinator") as c:
        return c.execute(HISTORY_JOIN.format(schema=ctx.topology.fdw.schema_name)).fetchall()  # type: ignore[arg-type]


def bare_sql(ctx: ClusterContext) -> None:
    """What the same checks need, by hand: no chunking, no framework."""
    bare_nodes(ctx)
    bare_replication(ctx)
    bare_fdw_counts(ctx)
    bare_fdw_join(ctx)


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
