"""Backups and restore against their alternatives, side by side on one machine (local backend, Citus).

    STREAMCTL_BENCH_PG_BINDIR=/usr/lib/postgresql/15/bin python bench/backup.py [--scale 1]

On a fresh seeded platform (coordinator, 2 workers, analytics primary + 1 replica, Redis):
1. a full `backup` (every node in parallel, restore point, archived) against `pg_basebackup -X stream` of
   each backed-up node in turn; goal: backup / basebackups <= 1 (not slower);
2. `restore --point` into a new cluster (verified) against `seed --scale S` on the running platform;
   goal: seed / restore >= 5;
3. `up --from-backup` end to end in another directory against `up` + `seed`;
4. the repository's size against the data's (sum of the backed-up data directories).
Everything is torn down afterwards. The bindir needs Citus (STREAMCTL_BENCH_PG_BINDIR, else PATH's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import free_port, free_port_run  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local.backend import LocalBackend
from streamctl.backup.pgbackrest import PgBackRest, backed_up_nodes, repository_path
from streamctl.backup.restore import Selection, restore_into, up_from_backup
from streamctl.backup.take import take_backup
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner
from streamctl.seed.run import SeedOptions, seed


def topology(directory: Path, cluster: str, repo: Path) -> Path:
    data: dict[str, Any] = {
        "version": 1, "cluster": cluster, "backend": "local", "tls": False,
        "metadata": {"citus": {"shard_count": 8}, "coordinator": {"port": free_port()},
                     "workers": {"count": 2, "port": free_port_run(2)}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": "analytics-replica-1", "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"enabled": False},
        "backup": {"repository": {"path": str(repo)}},
    }
    if os.environ.get("STREAMCTL_BENCH_PG_BINDIR"):
        data["local"] = {"pg_bindir": os.environ["STREAMCTL_BENCH_PG_BINDIR"]}
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def open_cluster(path: Path) -> tuple[ClusterContext, LocalBackend]:
    ctx = ClusterContext.build(load_topology(path), path)
    return ctx, LocalBackend(ctx)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return time.monotonic() - t0, out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def basebackups(ctx: ClusterContext, be: LocalBackend, target: Path) -> float:
    """pg_basebackup -X stream of each backed-up node in turn, over its socket as the server's user
    (a replication line for the local socket is added to each throw-away node's pg_hba first)."""
    total = 0.0
    for node in backed_up_nodes(ctx):
        hba = be.data_dir(node) / "pg_hba.conf"
        if "local replication" not in hba.read_text():
            hba.write_text("local replication all trust\n" + hba.read_text())
            with ctx.pg_connect(node.name) as conn:
                conn.execute("SELECT pg_reload_conf()")
        out = target / node.name
        t0 = time.monotonic()
        proc = subprocess.run([str(be.pg_bindir / "pg_basebackup"), "-h", str(be.socket_dir(node)), "-p",
                               str(node.port), "-U", ctx.topology.pg_user, "-D", str(out), "-X", "stream", "-c",
                               "fast"], capture_output=True, text=True, **be.run_as.subprocess_kwargs())
        if proc.returncode != 0:
            raise RuntimeError(f"pg_basebackup of {node.name} failed: {proc.stderr.strip()}")
        total += time.monotonic() - t0
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sbk-"))  # short: Unix socket paths are limited
    work.chmod(0o755)
    (work / "a").mkdir(mode=0o755)
    (work / "b").mkdir(mode=0o755)
    base = work / "base"
    base.mkdir()
    base.chmod(0o777)  # pg_basebackup runs as the server's user
    cluster = f"bbk{time.time_ns() % 10**6}"
    repo = work / "repo"
    ctx, be = open_cluster(topology(work / "a", cluster, repo))
    opened: list[tuple[ClusterContext, LocalBackend]] = [(ctx, be)]
    try:
        t_up, _ = timed(Runner(ctx, be).up)
        t_seed, _ = timed(seed, ctx, SeedOptions(scale=args.scale, seed=1))
        tool = PgBackRest(ctx, be)
        t_backup, result = timed(take_backup, tool, "full", "bench")
        t_base = basebackups(ctx, be, base)
        data_bytes = sum(du(be.data_dir(n)) for n in backed_up_nodes(ctx))
        repo_bytes = du(repository_path(ctx))  # type: ignore[arg-type]
        t_restore, restored = timed(restore_into, ctx, be, Selection(point="bench"), f"{cluster}-r")
        opened.append(open_cluster(restored.topology_file))
        ok_restore = int(restored.verify.exit_code) == 0
        ctx2, be2 = open_cluster(topology(work / "b", cluster, repo))
        opened.append((ctx2, be2))
        t_from, from_result = timed(up_from_backup, ctx2, be2, "bench")
        ok_from = int(from_result.verify.exit_code) == 0
    finally:
        for c, b in reversed(opened):
            with contextlib.suppress(Exception):  # best-effort teardown
                Runner(c, b).down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)
    s = result.set
    print(f"platform: coordinator + 2 workers + analytics primary/replica + Redis, seed --scale {args.scale}")
    print(f"1. full backup (4 nodes in parallel, restore point, archived)  {t_backup:7.2f} s")
    print(f"   pg_basebackup -X stream of each node in turn               {t_base:7.2f} s   "
          f"ratio {t_backup / t_base:4.2f}  (goal <= 1: {'met' if t_backup <= t_base else 'NOT met'})")
    print(f"2. restore --point into a new cluster, verified ({'ok' if ok_restore else 'verify FAILED'})"
          f"  {t_restore:7.2f} s")
    print(f"   seed --scale {args.scale}                                       {t_seed:7.2f} s   "
          f"seed/restore {t_seed / t_restore:4.2f}  (goal >= 5: {'met' if t_seed / t_restore >= 5 else 'NOT met'})")
    print("   restore phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in restored.phases.items())
          + " (up: stanzas, archiving, roles, subscriptions without a copy; verify: replica checksums)")
    print(f"3. up --from-backup, verified ({'ok' if ok_from else 'verify FAILED'})            {t_from:7.2f} s")
    print(f"   up + seed                                                  {t_up + t_seed:7.2f} s   "
          f"ratio {(t_up + t_seed) / t_from:4.2f}")
    print(f"4. repository {repo_bytes / 2**20:7.1f} MiB for {data_bytes / 2**20:7.1f} MiB of data directories "
          f"({100 * repo_bytes / data_bytes:.0f} %); the set's own figures: "
          f"{sum(n.size for n in s.nodes) / 2**20:.1f} MiB backed up, "
          f"{sum(n.repo_size for n in s.nodes) / 2**20:.1f} MiB stored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
