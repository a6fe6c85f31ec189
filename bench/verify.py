"""`verify` on 1,000,000-row tables against the bare SQL the same checks need, side by side in one run.

    python bench/verify.py [--rows 1000000] [--repeat 3]
    python bench/verify.py --citus --pg-bindir DIR [--scale 1] [--repeat 3]   # see bench/verify_citus.py

Brings up a local platform on fresh ports (analytics primary + 1 replica, FDW on the coordinator),
loads `users` and `user_watch_history` with generate_series, waits until the replica has every row,
then alternates, `--repeat` times:
  * verify: `run_checks` (nodes, replication subscription/lag/data with chunked checksums, FDW counts and
    join) exactly as `streamctl verify` runs them;
  * bare SQL: the same facts with hand-written SQL: a probe per node, the subscription and slot queries,
    count(*) and one whole-table md5(string_agg(... ORDER BY key)) per table on primary and replica
    (both sides in parallel, as verify does), FDW counts and the join.
Prints the medians and verify / bare (goal: <= 1.5). Tears the cluster down. Not a test: never gates CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from common import free_port  # bench/common.py (benchmarks run as scripts)

from streamctl import names
from streamctl.backends.local import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.readiness import Readiness
from streamctl.runner import Runner
from streamctl.verify.checksum import primary_key
from streamctl.verify.fdw import HISTORY_JOIN
from streamctl.verify.runner import run_checks

CHECKS = ["nodes", "replication", "fdw"]
REPLICA = "analytics-replica-1"


def make_topology(directory: Path) -> Path:
    data = {
        "version": 1, "cluster": "bench-verify", "backend": "local", "state_dir": ".streamctl",
        "metadata": {"citus": {"enabled": False}, "coordinator": {"port": free_port()},
                     "workers": {"count": 0, "port": free_port()}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": REPLICA, "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"enabled": False}, "gateway": {"port": free_port()},
    }
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(ctx: ClusterContext, rows: int) -> None:
    with ctx.pg_connect("analytics-primary") as conn:
        uuid = "('00000000-0000-0000-0000-' || lpad(to_hex({}), 12, '0'))::uuid"
        conn.execute(f"INSERT INTO users SELECT {uuid.format('i')}, "
                     "'user' || i, 'user' || i || '@example.org', now() - i * interval '1 second' "
                     "FROM generate_series(1, %s) i", (rows,))
        conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, "
                     f"duration_watched_seconds) SELECT {uuid.format('1 + i %% %s')}, "
                     "gen_random_uuid(), now() - i * interval '1 second', i %% 7200 "
                     "FROM generate_series(1, %s) i", (rows, rows))
        conn.execute("VACUUM ANALYZE users, user_watch_history")

    def caught_up() -> bool:
        with ctx.pg_connect(REPLICA) as conn:
            row = conn.execute("SELECT (SELECT count(*) FROM users), "
                               "(SELECT count(*) FROM user_watch_history)")
            return tuple(row.fetchone() or ()) == (rows, rows)

    Readiness("replica has every row", caught_up, timeout=900, interval=1).wait()
    with ctx.pg_connect(REPLICA) as conn:
        conn.execute("VACUUM ANALYZE users, user_watch_history")


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--citus", action="store_true",
                    help="Citus topology seeded by `streamctl seed`, every check (bench/verify_citus.py)")
    ap.add_argument("--pg-bindir", default=os.environ.get("STREAMCTL_TEST_PG_BINDIR", ""),
                    help="a Citus-enabled PostgreSQL bin directory (for --citus)")
    ap.add_argument("--scale", type=float, default=1.0, help="seed scale (for --citus)")
    args = ap.parse_args()
    if args.citus:
        import verify_citus  # bench/verify_citus.py

        if not args.pg_bindir:
            raise SystemExit("--citus needs --pg-bindir (or STREAMCTL_TEST_PG_BINDIR): a PostgreSQL with Citus")
        return verify_citus.run(args.scale, args.repeat, args.pg_bindir)
    directory = Path(tempfile.mkdtemp(prefix="streamctl-bench-verify-"))
    directory.chmod(0o755)
    path = make_topology(directory)
    ctx = ClusterContext.build(load_topology(path), path)
    runner = Runner(ctx, LocalBackend(ctx), timeout=120)
    try:
        t0 = time.perf_counter()
        runner.up()
        print(f"up: {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        load(ctx, args.rows)
        print(f"loaded {args.rows:,} users and {args.rows:,} history rows, replica caught up: "
              f"{time.perf_counter() - t0:.1f}s")

        def verify() -> None:
            report = run_checks(ctx, CHECKS)
            bad = [(r.check, r.target, r.detail) for r in report.results
                   if r.status.value not in ("passed", "skipped")]
            assert not bad, bad

        verify_times: list[float] = []
        bare_times: list[float] = []
        for i in range(args.repeat):
            order = [("verify", verify, verify_times), ("bare", lambda: bare_sql(ctx), bare_times)]
            for name, fn, acc in order if i % 2 == 0 else reversed(order):
                acc.append(timed(fn))
                print(f"  run {i + 1} {name}: {acc[-1]:.2f}s")
        v, b = statistics.median(verify_times), statistics.median(bare_times)
        print(f"verify (checks {', '.join(CHECKS)}), median of {args.repeat}: {v:.2f}s")
        print(f"bare SQL, median of {args.repeat}: {b:.2f}s")
        print(f"ratio verify / bare SQL: {v / b:.2f} (goal <= 1.5)")
        return 0
    finally:
        runner.down(volumes=True)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
