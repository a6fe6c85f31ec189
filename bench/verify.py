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
import statistics
import sys
import time
from pathlib import Path

import yaml
from common import free_port, local_cluster  # bench/common.py (benchmarks run as scripts)
from verify_bare import REPLICA, bare_sql, timed  # bench/verify_bare.py

from streamctl.context import ClusterContext
from streamctl.readiness import Readiness
from streamctl.verify.runner import run_checks

CHECKS = ["nodes", "replication", "fdw"]


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
    with local_cluster("streamctl-bench-verify-", make_topology) as (_, ctx, runner):
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


if __name__ == "__main__":
    sys.exit(main())
