"""Backups and restore against their alternatives, side by side on one machine (Citus; local backend, Docker
backend, or both in one run).

    STREAMCTL_BENCH_PG_BINDIR=/usr/lib/postgresql/15/bin python bench/backup.py [--scale 1] [--backend local,docker]

On a fresh seeded platform (coordinator, 2 workers, analytics primary + 1 replica, Redis), for each backend:
1. a full `backup` (every node in parallel, restore point, archived) against `pg_basebackup -X stream` of
   each backed-up node in turn (on Docker run in the node's container, into its volume), alternated
   `--runs` times (default 3), each from a checkpointed state (a CHECKPOINT on every node first, untimed:
   the first copy after `seed` would otherwise pay for flushing the seed's pages), medians compared; goal:
   backup / basebackups <= 1 (not slower);
2. `restore --point` into a new cluster (verified) against `seed --scale S` on the running platform;
   goal: seed / restore >= 5;
3. `up --from-backup` end to end in another directory, the original and the restored cluster taken down
   first (on Docker a cluster's name is the engine's: the same cluster cannot run twice), against `up` + `seed`;
4. the repository's size against the data's (sum of the backed-up data directories).
Everything is torn down afterwards. The local bindir needs Citus (STREAMCTL_BENCH_PG_BINDIR, else PATH's); the
Docker backend runs the test images (images/, built when missing: the registry's cannot be pulled here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from common import free_port, free_port_run  # bench/common.py (benchmarks run as scripts)

from streamctl.backup.pgbackrest import PgBackRest, backed_up_nodes, repository_path
from streamctl.backup.restore import Selection, restore_into, up_from_backup
from streamctl.backup.take import take_backup
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.runner import Runner
from streamctl.seed.run import SeedOptions, seed


def topology(directory: Path, cluster: str, repo: Path, backend: str) -> Path:
    data: dict[str, Any] = {
        "version": 1, "cluster": cluster, "backend": backend, "tls": False,
        "metadata": {"citus": {"shard_count": 8}, "coordinator": {"port": free_port()},
                     "workers": {"count": 2, "port": free_port_run(2)}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": "analytics-replica-1", "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"enabled": False},
        "backup": {"repository": {"path": str(repo)}, "retention_full": 9},  # every run's set kept
    }
    if backend == "docker":
        from tests.support.docker import use_image
        from tests.support.images import ensure_citus_image, ensure_test_image

        use_image(data, ensure_test_image())
        data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = ensure_citus_image()
    elif os.environ.get("STREAMCTL_BENCH_PG_BINDIR"):
        data["local"] = {"pg_bindir": os.environ["STREAMCTL_BENCH_PG_BINDIR"]}
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def open_cluster(path: Path) -> tuple[ClusterContext, Any]:
    ctx = ClusterContext.build(load_topology(path), path)
    if ctx.topology.backend == "docker":
        from streamctl.backends.docker.backend import DockerBackend

        return ctx, DockerBackend(ctx)
    from streamctl.backends.local.backend import LocalBackend

    return ctx, LocalBackend(ctx)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return time.monotonic() - t0, out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def local_basebackups(ctx: ClusterContext, be: Any, target: Path) -> float:
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
        shutil.rmtree(out, ignore_errors=True)
    return total


def docker_exec(be: Any, node: Any, argv: list[str]) -> str:
    from streamctl.backup.docker import exec_in

    code, out, err = exec_in(be.api, be.container_id(node), argv)
    if code:
        raise RuntimeError(f"{' '.join(argv[:1])} in {node.name} failed: {(err or out).strip()}")
    return out


def docker_basebackups(ctx: ClusterContext, be: Any) -> float:
    """pg_basebackup -X stream of each backed-up node in turn, run in the node's container over its socket
    as the server's user, into a directory of its volume (removed after)."""
    from streamctl.backends.docker import spec
    from streamctl.backup.docker import PORT, SOCKET

    total = 0.0
    for node in backed_up_nodes(ctx):
        with ctx.pg_connect(node.name) as conn:  # a replication line for the socket, as on the local backend
            hba = str(conn.execute("SHOW hba_file").fetchone()[0])
            docker_exec(be, node, ["sed", "-i", "1i local replication all trust", hba])
            conn.execute("SELECT pg_reload_conf()")
        out = f"{spec.BACKUP_HOME}/bench-basebackup"  # in the volume, beside PGDATA, the server user's
        t0 = time.monotonic()
        docker_exec(be, node, ["pg_basebackup", "-h", SOCKET, "-p", str(PORT), "-U", ctx.topology.pg_user,
                               "-D", out, "-X", "stream", "-c", "fast"])
        total += time.monotonic() - t0
        docker_exec(be, node, ["rm", "-rf", out])
    return total


def checkpoint(ctx: ClusterContext) -> None:
    """Every backed-up node's dirty pages flushed, so that neither side of a comparison pays for them."""
    for node in backed_up_nodes(ctx):
        with ctx.pg_connect(node.name) as conn:
            conn.execute("CHECKPOINT")


def data_bytes(ctx: ClusterContext, be: Any) -> int:
    if ctx.topology.backend == "docker":
        from streamctl.backends.docker import spec

        return sum(int(docker_exec(be, n, ["du", "-sb", spec.PGDATA]).split()[0]) for n in backed_up_nodes(ctx))
    return sum(du(be.data_dir(n)) for n in backed_up_nodes(ctx))


@dataclass
class Figures:
    backend: str
    t: dict[str, float] = field(default_factory=dict)
    spread: dict[str, list[float]] = field(default_factory=dict)  # every run of an alternated comparison
    ok_restore: bool = False
    ok_from: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    data: int = 0
    repo: int = 0
    set_read: int = 0
    set_stored: int = 0
    load: tuple[float, float] = (0.0, 0.0)


def down(opened: list[tuple[ClusterContext, Any]]) -> None:
    while opened:
        c, b = opened.pop()
        with contextlib.suppress(Exception):  # best-effort teardown
            Runner(c, b).down(volumes=True)
        if c.topology.backend == "docker":
            from tests.support.docker import remove_cluster_resources

            with contextlib.suppress(Exception):
                remove_cluster_resources(c.topology.cluster)


def measure(backend: str, scale: float, runs: int) -> Figures:
    f = Figures(backend, load=(os.getloadavg()[0], 0.0))
    work = Path(tempfile.mkdtemp(prefix="sbk-"))  # short: Unix socket paths are limited
    work.chmod(0o755)
    for d in ("a", "b"):
        (work / d).mkdir(mode=0o755)
    base = work / "base"
    base.mkdir()
    base.chmod(0o777)  # pg_basebackup runs as the server's user
    cluster = f"bbk{time.time_ns() % 10**6}"
    repo = work / "repo"
    ctx, be = open_cluster(topology(work / "a", cluster, repo, backend))
    opened: list[tuple[ClusterContext, Any]] = [(ctx, be)]
    try:
        f.t["up"], _ = timed(Runner(ctx, be, timeout=180).up)
        f.t["seed"], _ = timed(seed, ctx, SeedOptions(scale=scale, seed=1))
        tool, label = PgBackRest(ctx, be), "bench"
        for i in range(1, runs + 1):  # alternated, each from a checkpointed state
            label = f"bench-{i}"
            checkpoint(ctx)
            took, result = timed(take_backup, tool, "full", label)
            checkpoint(ctx)
            bases = docker_basebackups(ctx, be) if backend == "docker" else local_basebackups(ctx, be, base)
            f.spread.setdefault("backup", []).append(took)
            if i == 1:  # one set's worth: the repository holds a set per run
                f.repo = du(repository_path(ctx))  # type: ignore[arg-type]
            f.spread.setdefault("base", []).append(bases)
        f.t["backup"], f.t["base"] = statistics.median(f.spread["backup"]), statistics.median(f.spread["base"])
        f.data = data_bytes(ctx, be)
        f.set_read, f.set_stored = sum(n.size for n in result.set.nodes), sum(n.repo_size for n in result.set.nodes)
        f.t["restore"], restored = timed(restore_into, ctx, be, Selection(point=label), f"{cluster}-r",
                                         timeout=180)
        opened.append(open_cluster(restored.topology_file))
        f.ok_restore, f.phases = int(restored.verify.exit_code) == 0, dict(restored.phases)
        down(opened)  # the original and the restored cluster: up --from-backup starts the same cluster again
        ctx2, be2 = open_cluster(topology(work / "b", cluster, repo, backend))
        opened.append((ctx2, be2))
        f.t["from"], from_result = timed(up_from_backup, ctx2, be2, label, timeout=180)
        f.ok_from = int(from_result.verify.exit_code) == 0
    finally:
        down(opened)
        shutil.rmtree(work, ignore_errors=True)
    f.load = (f.load[0], os.getloadavg()[0])
    return f


def report(scale: float, runs: list[Figures]) -> None:
    def row(label: str, cell: Any) -> None:
        print(f"{label:<58}" + "".join(f"{cell(f):>22}" for f in runs))

    def goal(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"platform: coordinator + 2 workers + analytics primary/replica + Redis, seed --scale {scale}")
    row("", lambda f: f.backend)
    row("load average (1 min) at start / end", lambda f: f"{f.load[0]:.1f} / {f.load[1]:.1f}")
    def spread(key: str) -> Any:
        return lambda f: f"{f.t[key]:.2f} s ({'/'.join(f'{x:.1f}' for x in f.spread[key])})"

    row("1. full backup (4 nodes in parallel, point archived), median", spread("backup"))
    row("   pg_basebackup -X stream of each node in turn, median", spread("base"))
    row("   ratio (goal <= 1)", lambda f: f"{f.t['backup'] / f.t['base']:.2f} {goal(f.t['backup'] <= f.t['base'])}")
    row("2. restore --point into a new cluster, verified", lambda f: f"{f.t['restore']:.2f} s"
        + ("" if f.ok_restore else " FAILED"))
    row(f"   seed --scale {scale}", lambda f: f"{f.t['seed']:.2f} s")
    row("   seed / restore (goal >= 5)", lambda f: f"{f.t['seed'] / f.t['restore']:.2f} "
        + goal(f.t["seed"] / f.t["restore"] >= 5))
    for phase in runs[0].phases:
        row(f"   restore phase: {phase}", lambda f, p=phase: f"{f.phases.get(p, 0.0):.1f} s")
    row("3. up --from-backup, verified", lambda f: f"{f.t['from']:.2f} s" + ("" if f.ok_from else " FAILED"))
    row("   up + seed", lambda f: f"{f.t['up'] + f.t['seed']:.2f} s")
    row("   (up + seed) / up --from-backup", lambda f: f"{(f.t['up'] + f.t['seed']) / f.t['from']:.2f}")
    row("4. repository (MiB)", lambda f: f"{f.repo / 2**20:.1f}")
    row("   backed-up data directories (MiB)", lambda f: f"{f.data / 2**20:.1f}")
    row("   repository / data", lambda f: f"{100 * f.repo / f.data:.0f} %")
    row("   the set: read / stored (MiB)", lambda f: f"{f.set_read / 2**20:.0f} / {f.set_stored / 2**20:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--backend", default="local", help="local, docker, or both: local,docker")
    parser.add_argument("--runs", type=int, default=3, help="alternated backups and basebackups (medians)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not backends or set(backends) - {"local", "docker"}:
        parser.error("--backend: local, docker or local,docker")
    report(args.scale, [measure(b, args.scale, max(1, args.runs)) for b in backends])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
