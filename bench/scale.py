"""How fast does `scale --workers 3` grow a seeded 1+2 Citus cluster, and what does streamctl add to the
bare SQL calls? Measured side by side in one run.

    STREAMCTL_TEST_PG_BINDIR=<bin dir with Citus> python bench/scale.py [--scale 0.1] [--rounds 1]

Two identical clusters (local backend, free ports, temporary directory; torn down at the end), each a
coordinator + 2 workers with the default 32 shards, seeded with `streamctl seed --scale 0.1 --seed 7`.
Per round and setting, on cluster A `scale_workers(..., 3)` (provision, register, rebalance, rows and
checksums before and after) and on cluster B the same provisioning (`up` with 3 workers) followed by the
bare `citus_rebalance_start(...)` and `citus_rebalance_wait()`; then both shrink back to 2 workers
(not timed). Settings: default (auto, one move at a time), auto with 2 moves per node, block_writes with
2 moves per node. Goals: streamctl / bare <= 1.1; default mode at least 2x faster than the old 80 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import free_port, free_port_run, streamctl  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local.backend import LocalBackend
from streamctl.citus.nodes import coordinator_conn
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner
from streamctl.scale import scale_workers, with_workers
from streamctl.shardops.common import MoveOptions

OLD_SECONDS = 80.0
SETTINGS = [("default (auto, serial)", "auto", 1), ("auto, 2 per node", "auto", 2),
            ("block_writes, 2 per node", "block_writes", 2)]


def make_cluster(work: Path, name: str, scale: float) -> Path:
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    data: dict[str, Any] = {
        "version": 1, "cluster": name, "backend": "local", "state_dir": str(work / "state"),
        "metadata": {"coordinator": {"port": free_port()}, "workers": {"count": 2, "port": free_port_run(3)}},
        "analytics": {"primary": {"port": free_port()}, "replicas": []},
        "mongo": {"enabled": False}, "redis": {"enabled": False}, "gateway": {"port": free_port()},
    }
    if os.environ.get("STREAMCTL_TEST_PG_BINDIR"):
        data["local"] = {"pg_bindir": os.environ["STREAMCTL_TEST_PG_BINDIR"]}
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    Runner(*_ctx_backend(path)).up()
    streamctl("seed", "--scale", str(scale), "--seed", "7", "--as-of", "2026-01-31", "-f", str(path), check=True,
              timeout=None)
    return path


def _ctx_backend(path: Path) -> tuple[ClusterContext, LocalBackend]:
    ctx = ClusterContext.build(load_topology(path), path)
    return ctx, LocalBackend(ctx)


def streamctl_grow(path: Path, mode: str, parallel: int) -> float:
    ctx, backend = _ctx_backend(path)
    t0 = time.perf_counter()
    scale_workers(ctx, backend, 3, options=MoveOptions(mode, parallel))
    return time.perf_counter() - t0


def bare_grow(path: Path, mode: str, parallel: int) -> float:
    """Provisioning as streamctl does it, then the SQL an operator would type."""
    ctx, _ = _ctx_backend(path)
    t0 = time.perf_counter()
    grown = ClusterContext(with_workers(ctx.topology, 3), ctx.store, ctx.topology_path)
    Runner(grown, LocalBackend(grown)).up()
    with coordinator_conn(grown) as conn:
        if parallel > 1:
            for name, value in (("citus.max_background_task_executors", 3 * parallel),
                                ("citus.max_background_task_executors_per_node", parallel)):
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        conn.execute("SELECT citus_rebalance_start(shard_transfer_mode => %s::citus.shard_transfer_mode, "
                     "parallel_transfer_colocated_shards => %s, parallel_transfer_reference_tables => %s)",
                     (mode, parallel > 1, parallel > 1))
        conn.execute("SELECT citus_rebalance_wait()")
        seconds = time.perf_counter() - t0
        if parallel > 1:
            conn.execute("ALTER SYSTEM RESET citus.max_background_task_executors")
            conn.execute("ALTER SYSTEM RESET citus.max_background_task_executors_per_node")
            conn.execute("SELECT pg_reload_conf()")
    path.write_text(path.read_text().replace("count: 2", "count: 3"))
    return seconds


def shrink(path: Path) -> None:
    ctx, backend = _ctx_backend(path)
    scale_workers(ctx, backend, 2, options=MoveOptions("block_writes", 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-scale-"))
    os.chmod(work, 0o755)
    paths: list[Path] = []
    try:
        paths = [make_cluster(work / n, f"bench-scale-{n}", args.scale) for n in ("a", "b")]
        with coordinator_conn(_ctx_backend(paths[0])[0]) as conn:
            rows = sum(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                       for (t,) in conn.execute("SELECT table_name::text FROM citus_tables").fetchall())
        print(f"1+2 Citus cluster seeded at scale {args.scale}: {rows:,} rows in Citus tables; growing to 3 workers")
        print(f"{'setting':<28}{'streamctl s':>12}{'bare SQL s':>12}{'ratio':>8}{'vs 80 s':>9}")
        for _ in range(args.rounds):
            for label, mode, parallel in SETTINGS:
                ours = streamctl_grow(paths[0], mode, parallel)
                bare = bare_grow(paths[1], mode, parallel)
                print(f"{label:<28}{ours:>12.1f}{bare:>12.1f}{ours / bare:>8.2f}{OLD_SECONDS / ours:>8.1f}x",
                      flush=True)
                for p in paths:
                    shrink(p)
    finally:
        for p in paths:
            try:
                ctx, backend = _ctx_backend(p)
                Runner(ctx, backend).down(volumes=True)
            except Exception as exc:  # noqa: BLE001 - best-effort teardown, say what was left
                print(f"teardown of {p.parent}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
