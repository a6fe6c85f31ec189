"""How parallel is `up`? Its wall time against the slowest single node's own ready time, in one run.

    python bench/up.py [--backend local|docker|swarm] [--topology examples/no-citus.yaml] [--image-override IMG]
    python bench/up.py --compose [--rounds 3] [--image-override IMG]   # see bench/up_compose.py

1. Each node alone: create it in a cluster of its own, wait until ready, time it, stop it (sequentially).
2. The whole `up` on a fresh cluster: node phase (all nodes launched and ready) and full (with the
   configuration of schema, replication, FDW, stores).
3. A second `up` on the healthy cluster.
Repeated --rounds times (default 3); prints every round and the median ratios; goals: node phase /
slowest node <= 1.3, with configuration <= 1.6, second `up` <= 2 s. Tears everything down.
Ports are taken fresh so it never touches a running cluster.

    python bench/up.py --compare-tls [--rounds 3]

instead measures the node phase of a fresh `up` with TLS (CA and certificates issued, servers started with
them, probes verifying) against `tls: false`, alternating the two round by round; goal: <= 1.10.

With `--backend swarm` (the engine must be a Swarm manager): a cold `up` of the same topology and images
on plain Docker and on Swarm, alternately (`--rounds`), and their ratio; goal: swarm / docker <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from topology import bench_topology, context  # bench/topology.py

from streamctl.backends import select_backend
from streamctl.backends.base import Action, Backend
from streamctl.backends.local import pg_template
from streamctl.config.load import parse_topology
from streamctl.context import ClusterContext
from streamctl.events import Event
from streamctl.runner import Runner


def node_phase(args: argparse.Namespace, tls: bool) -> float:
    """Seconds from `up` starting on a fresh cluster until every node is launched and ready."""
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    data = {**bench_topology(args.topology, args.backend, args.image_override), "tls": tls}
    ctx = context(data, work)
    backend = select_backend(ctx)
    ready: dict[str, float] = {}

    def on_event(ev: Event) -> None:
        if ev.kind in ("done", "noop") and ev.step in ("create", "recreate", "start", "noop"):
            ready[ev.node] = time.monotonic()

    runner = Runner(ctx, backend, emit=on_event)
    try:
        t0 = time.monotonic()
        runner.up()
        return max(ready.values()) - t0
    finally:
        Runner(ctx, backend).down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)


def compare_tls(args: argparse.Namespace) -> int:
    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for tls in (False, True):  # alternate: a drifting machine load affects both alike
            samples[tls].append(node_phase(args, tls))
    plain, tls = statistics.median(samples[False]), statistics.median(samples[True])
    print(f"backend: {args.backend}   node phase of a fresh `up`, {args.rounds} alternating rounds (median)")
    for label, key in (("tls: false", False), ("tls (default)", True)):
        print(f"  {label:<14} {statistics.median(samples[key]):6.2f} s   (rounds: "
              f"{', '.join(f'{v:.2f}' for v in samples[key])})")
    print(f"  ratio tls/plain: {tls / plain:4.2f}  (goal <= 1.10: {'met' if tls / plain <= 1.10 else 'NOT met'})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="local", choices=["local", "docker", "swarm"])
    ap.add_argument("--topology", type=Path, default=Path(__file__).resolve().parents[1] / "examples/no-citus.yaml")
    ap.add_argument("--image-override", default=None, help="one image for every node (Docker, offline)")
    ap.add_argument("--compare-tls", action="store_true", help="node phase with TLS against tls: false")
    ap.add_argument("--compose", action="store_true",
                    help="Docker Compose v2 `up -d --wait` vs `streamctl up`, alternating (bench/up_compose.py)")
    ap.add_argument("--compose-bin", default=None, help="the Docker Compose v2 binary (see bench/get-compose.sh)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each measuring everything once")
    args = ap.parse_args()
    if args.compare_tls:
        return compare_tls(args)
    if args.compose:
        import up_compose  # bench/up_compose.py

        return up_compose.run(args.topology, args.image_override, args.rounds, args.compose_bin)
    if args.backend == "swarm":
        return compare_swarm(args.topology, args.image_override, args.rounds)

    made: list[tuple[ClusterContext, Backend, Path]] = []  # removed only once every round is measured
    try:
        rounds = [one_round(args, made) for _ in range(args.rounds)]
    finally:
        for ctx, backend, work in made:
            Runner(ctx, backend).down(volumes=True)
            shutil.rmtree(work, ignore_errors=True)
    print(f"backend: {args.backend}   nodes: {len(rounds[0].alone)}   rounds: {len(rounds)} (each: every node "
          "alone, then the whole `up`)")
    for name in rounds[0].alone:
        print(f"  {name:<24} alone: " + "  ".join(f"{r.alone[name]:6.2f} s" for r in rounds))
    print("slowest single node:                      " + "  ".join(f"{r.slowest:6.2f} s" for r in rounds))
    print("`up`, nodes launched and ready:           " + "  ".join(f"{r.nodes_ready:6.2f} s" for r in rounds))
    print("`up`, with schema/replication/FDW/stores: " + "  ".join(f"{r.full:6.2f} s" for r in rounds))
    print("second `up`:                              " + "  ".join(f"{r.second:6.2f} s" for r in rounds)
          + f"   (no changes: {all(not r.second_changed for r in rounds)}; goal <= 2 s)")
    node = [r.nodes_ready / r.slowest for r in rounds]
    full = [r.full / r.slowest for r in rounds]
    print(f"ratio node phase / slowest node alone, per round: {'  '.join(f'{v:4.2f}' for v in node)}   "
          f"median {statistics.median(node):4.2f}  (goal <= 1.3)")
    print(f"ratio with configuration / slowest node alone:    {'  '.join(f'{v:4.2f}' for v in full)}   "
          f"median {statistics.median(full):4.2f}  (goal <= 1.6)")
    return 0


class Round(NamedTuple):
    alone: dict[str, float]  # node -> seconds to create it alone and see it ready
    nodes_ready: float  # the whole `up` on a fresh cluster: every node launched and ready
    full: float  # ... and configured
    second: float  # a second `up` on the healthy cluster
    second_changed: bool

    @property
    def slowest(self) -> float:
        return max(self.alone.values())


def fresh_cluster(args: argparse.Namespace, made: list[tuple[ClusterContext, Backend, Path]]
                  ) -> tuple[ClusterContext, Backend]:
    """A cluster never seen before: its own name, ports, secrets, state and (empty) local template cache,
    so that no initialised PostgreSQL template of an earlier measurement is reused, and nothing is
    deleted to get there. Deleting thousands of files just before a measurement would distort it: ext4
    without a journal (this machine's) scans every inode freed in the last minutes on each file it then
    creates, which slows the copies of the template for minutes."""
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    os.environ[pg_template.CACHE_ENV] = str(work / "pg-templates")
    ctx = context(bench_topology(args.topology, args.backend, args.image_override), work)
    backend = select_backend(ctx)
    made.append((ctx, backend, work))
    nodes = ctx.topology.nodes()
    backend.preflight(nodes)
    ctx.store.secrets(ctx.topology, create=True)
    ctx.store.record_endpoints(backend.name, [backend.endpoint(n) for n in nodes])
    return ctx, backend


def one_round(args: argparse.Namespace, made: list[tuple[ClusterContext, Backend, Path]]) -> Round:
    """Each node alone (created in a fresh cluster, ready, stopped), then `up` of them all, cold."""
    alone: dict[str, float] = {}
    names = [n.name for n in parse_topology(bench_topology(args.topology, args.backend, None)).nodes()]
    for name in names:
        ctx, backend = fresh_cluster(args, made)
        node = next(n for n in ctx.topology.nodes() if n.name == name)
        t0 = time.monotonic()
        backend.apply(node, Action.CREATE)
        backend.readiness(node).wait()
        alone[name] = time.monotonic() - t0
        backend.stop(node)  # idle, out of the way; removed at the end

    node_phase: dict[str, float] = {}

    def on_event(ev: Event) -> None:
        if ev.kind in ("done", "noop") and ev.step in ("create", "recreate", "start", "noop"):
            node_phase[ev.node] = time.monotonic()

    ctx, backend = fresh_cluster(args, made)
    runner = Runner(ctx, backend, emit=on_event)
    t0 = time.monotonic()
    first = runner.up()
    nodes_ready = max(node_phase.values()) - t0
    t1 = time.monotonic()
    second = runner.up()
    seconds = time.monotonic() - t1
    Runner(ctx, backend).down(volumes=False)  # stopped; removed at the end
    return Round(alone, nodes_ready, first.seconds, seconds, second.changed)


def cold_up(path: Path, backend: str, image: str | None) -> float:
    """One `up` of a fresh cluster on `backend`, then `down --volumes`; the `up` seconds."""
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    data = bench_topology(path, backend, image)
    data["cluster"] = f"bench-{backend}-{time.monotonic_ns() % 10**8}"
    data["bind"] = "0.0.0.0" if backend == "swarm" else "127.0.0.1"  # Swarm publishes on every interface
    ctx = context(data, work)
    runner = Runner(ctx, select_backend(ctx))
    try:
        return runner.up().seconds
    finally:
        runner.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)


def compare_swarm(path: Path, image: str | None, rounds: int) -> int:
    times: dict[str, list[float]] = {"docker": [], "swarm": []}
    for _ in range(rounds):
        for backend in ("docker", "swarm"):
            times[backend].append(cold_up(path, backend, image))
    for backend, secs in times.items():
        print(f"`up` on {backend:<6}: " + "  ".join(f"{s:6.2f} s" for s in secs))
    ratios = [s / d for s, d in zip(times["swarm"], times["docker"], strict=True)]
    print(f"swarm / docker, per round: {'  '.join(f'{r:4.2f}' for r in ratios)}   (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
