"""How close to `psql \\copy` does `seed` load, and does its memory stay flat? Measured side by side.

    python bench/seed.py [--scale 1] [--rounds 3] [--memory-scales 0.1,1]
    python bench/seed.py --citus --scale 0.2 --rounds 2 --pg-bindir DIR   # see bench/seed_citus.py

On a cluster it brings up itself (local backend, free ports, temporary directory; torn down at the end):
1. `streamctl seed` at each memory scale, as a child process: wall time, its own watch-history rows/s
   (generation + load), and peak memory (ru_maxrss of the child).
2. The watch-history rows of the last run are generated once, written to a CSV, and loaded into the
   same empty table (a structural copy of user_watch_history: same columns, indexes, identity and
   foreign key, outside the publication so replication does not disturb the timing) in alternating
   rounds by: `psql \\copy` from the CSV; streamctl's loader from the rows in memory; streamctl's
   generator + loader (what `seed` does for that table).
Prints rows per second and ratios; goals: loader / \\copy >= 0.8, generate+load / \\copy >= 0.5,
peak memory at scale 1 <= 1.5 x scale 0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from common import command, free_port  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner
from streamctl.seed import copyfmt, postgres
from streamctl.seed.audience import HISTORY_COLUMNS, history_batches, user_index
from streamctl.seed.catalogue import content_index
from streamctl.seed.jobs import HISTORY_LINE
from streamctl.seed.spec import SeedSpec

BENCH_TABLE = "bench_watch_history"


def write_topology(work: Path) -> Path:
    data = {
        "version": 1, "cluster": "bench-seed", "backend": "local", "state_dir": str(work / "state"),
        "metadata": {"citus": {"enabled": False}, "coordinator": {"port": free_port()},
                     "workers": {"count": 0, "port": free_port()}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": "analytics-replica-1", "port": free_port()}]},
        "mongo": {"enabled": shutil.which("mongod") is not None, "port": free_port()},
        "redis": {"port": free_port()}, "gateway": {"port": free_port()},
    }
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_seed(topology: Path, scale: float, as_of: str) -> tuple[dict[str, Any], float, float]:
    """`streamctl seed --reset --json` as a child: (summary, wall seconds, peak RSS in MiB)."""
    argv = command("seed", "-f", str(topology), "--scale", str(scale), "--seed", "42", "--as-of", as_of, "--reset",
                   "--json")
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"streamctl seed failed (exit {proc.returncode}): {text}")
    return json.loads(text), wall, usage.ru_maxrss / 1024  # Linux reports KiB


def prepare_table(ctx: ClusterContext) -> None:
    with ctx.pg_connect("analytics-primary") as conn:
        conn.execute(f"DROP TABLE IF EXISTS {BENCH_TABLE}")
        conn.execute(f"CREATE TABLE {BENCH_TABLE} (LIKE user_watch_history INCLUDING ALL)")
        conn.execute(f"ALTER TABLE {BENCH_TABLE} ADD FOREIGN KEY (user_id) REFERENCES users (user_id)")


def empty_table(ctx: ClusterContext) -> None:
    with ctx.pg_connect("analytics-primary") as conn:
        conn.execute(f"TRUNCATE {BENCH_TABLE} RESTART IDENTITY")
        conn.execute("CHECKPOINT")  # every round starts from the same clean state


def time_psql_copy(ctx: ClusterContext, backend: LocalBackend, csv_path: Path) -> float:
    node = ctx.node("analytics-primary")
    cols = ", ".join(HISTORY_COLUMNS)
    argv, env = backend.psql_argv(node, ctx.topology.pg_user, ctx.secrets["postgres_password"],
                                  "analytics_db", ["-v", "ON_ERROR_STOP=1", "-c",
                                                   f"\\copy {BENCH_TABLE} ({cols}) FROM '{csv_path}' "
                                                   "WITH (FORMAT csv)"])
    t0 = time.monotonic()
    subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
    return time.monotonic() - t0


def time_loader(ctx: ClusterContext, batches: Any) -> float:
    with ctx.pg_connect("analytics-primary") as conn:
        t0 = time.monotonic()
        postgres.copy_chunks(conn, BENCH_TABLE, HISTORY_COLUMNS, copyfmt.chunks(batches, HISTORY_LINE))
        return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="scale of the load comparison")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-scales", default="0.1,1", help="two scales whose peak memory is compared")
    ap.add_argument("--citus", action="store_true",
                    help="Citus tables vs psql \\copy, and seed end to end vs bare loads (bench/seed_citus.py)")
    ap.add_argument("--pg-bindir", default=os.environ.get("STREAMCTL_TEST_PG_BINDIR", ""),
                    help="a Citus-enabled PostgreSQL bin directory (for --citus)")
    args = ap.parse_args()
    if args.citus:
        import seed_citus  # bench/seed_citus.py

        if not args.pg_bindir:
            raise SystemExit("--citus needs --pg-bindir (or STREAMCTL_TEST_PG_BINDIR): a PostgreSQL with Citus")
        return seed_citus.run(args.scale, args.rounds, args.pg_bindir)
    mem_scales = [float(s) for s in args.memory_scales.split(",")]
    as_of = datetime.now(UTC).date()

    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-seed-"))
    work.chmod(0o755)
    topology = write_topology(work)
    ctx = ClusterContext.build(load_topology(topology), topology)
    backend = LocalBackend(ctx)
    runner = Runner(ctx, backend, timeout=120)
    try:
        runner.up()
        seeds = {}
        order = [s for s in mem_scales if s != args.scale] + [args.scale]  # last: its users stay loaded
        for scale in order:
            seeds[scale] = run_seed(topology, scale, as_of.isoformat())

        spec = SeedSpec(args.scale, 42, as_of)
        content, users = content_index(spec), user_index(spec)
        rows = [row for batch in history_batches(spec, content, users) for row in batch]
        csv_path = work / "history.csv"
        with csv_path.open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        os.chmod(work, 0o755)
        prepare_table(ctx)

        timings: dict[str, list[float]] = {"psql \\copy": [], "loader": [], "generate+load": []}
        for _ in range(args.rounds):
            empty_table(ctx)
            timings["psql \\copy"].append(time_psql_copy(ctx, backend, csv_path))
            empty_table(ctx)
            timings["loader"].append(time_loader(ctx, copyfmt.batched(rows)))
            empty_table(ctx)
            timings["generate+load"].append(time_loader(ctx, history_batches(spec, content, users)))
    finally:
        Runner(ctx, backend).down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)

    n = len(rows)
    best = {k: n / min(v) for k, v in timings.items()}
    median = {k: n / statistics.median(v) for k, v in timings.items()}
    base, base_median = best["psql \\copy"], median["psql \\copy"]
    print(f"watch history: {n:,} rows, scale {args.scale:g}, {args.rounds} alternating rounds "
          f"(best of them, and median; the spread is other work on the machine)")
    for name, rate in best.items():
        runs = ", ".join(f"{t:.2f}" for t in timings[name])
        print(f"  {name:<14} best {rate:>8,.0f} rows/s  ratio {rate / base:4.2f} | median {median[name]:>8,.0f} "
              f"rows/s  ratio {median[name] / base_median:4.2f}   (runs: {runs} s)")
    print("  goals: loader / \\copy >= 0.8; generate+load / \\copy >= 0.5")
    print("`streamctl seed` end to end (child process, --reset, every store):")
    for scale, (summary, wall, rss) in seeds.items():
        hist = next(t for t in summary["tables"] if t["table"] == "user_watch_history")
        print(f"  scale {scale:<5g} wall {wall:6.1f} s   history {hist['rows']:>9,} rows at "
              f"{hist['rows_per_second']:>8,} rows/s (ratio to best \\copy {hist['rows_per_second'] / base:4.2f})"
              f"   peak memory {rss:6.1f} MiB")
    low, high = seeds[mem_scales[0]][2], seeds[mem_scales[1]][2]
    print(f"peak memory scale {mem_scales[1]:g} / scale {mem_scales[0]:g}: {high / low:4.2f}   (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
