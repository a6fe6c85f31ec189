"""How parallel is `up`? Its wall time against the slowest single node's own ready time, in one run.

    python bench/up.py [--backend local|docker|swarm] [--topology examples/no-citus.yaml] [--image-override IMG]
    python bench/up.py --compose [--rounds 3] [--image-override IMG]   # see bench/up_compose.py

1. Each node alone: create it, wait until ready, time it, remove it (sequentially).
2. The whole `up` on a fresh cluster: node phase (all nodes launched and ready) and full (with the
   configuration of schema, replication, FDW, stores).
3. A second `up` on the healthy cluster.
Prints the ratios; goals: node phase / slowest node <= 1.3, second `up` <= 2 s. Tears everything down.
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

from topology import bench_topology, context  # bench/topology.py

from streamctl.backends import docker_template, pg_template, select_backend
from streamctl.backends.base import Action
from streamctl.events import Event
from streamctl.runner import Runner


def node_phase(args: argparse.Namespace, tls: bool) -> float:
    """Seconds from `up` starting on a fresh cluster until every node is launched and ready."""
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    data = {**bench_topology(args.topology, args.backend, args.image_override), "tls": tls}
    ctx = context(data, work)
    backend = select_backend(ctx, args.backend)
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
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --compose, swarm, --compare-tls")
    args = ap.parse_args()
    if args.compare_tls:
        return compare_tls(args)
    if args.compose:
        import up_compose  # bench/up_compose.py

        return up_compose.run(args.topology, args.image_override, args.rounds, args.compose_bin)
    if args.backend == "swarm":
        return compare_swarm(args.topology, args.image_override, args.rounds)

    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    data = bench_topology(args.topology, args.backend, args.image_override)
    ctx = context(data, work)
    backend = select_backend(ctx, args.backend)
    runner = Runner(ctx, backend)
    nodes = ctx.topology.nodes()
    backend.preflight(nodes)
    ctx.store.secrets(ctx.topology, create=True)
    ctx.store.record_endpoints(backend.name, [backend.endpoint(n) for n in nodes])

    alone: dict[str, float] = {}

    # A bench-private template cache (local backend), emptied before each cold measurement.
    cache = work / "pg-templates"
    os.environ[pg_template.CACHE_ENV] = str(cache)

    def forget_templates() -> None:
        # Every cold measurement starts with no initialised PostgreSQL template left by an earlier one.
        shutil.rmtree(cache, ignore_errors=True)
        if backend.name == "docker":  # and the cluster's initialised template volumes (Docker)
            backend._volume_templates = None  # type: ignore[attr-defined]  # nor what the backend knew of them
            api = backend.api  # type: ignore[attr-defined]
            found = api.volumes(filters={"label": f"{docker_template.LABEL_TEMPLATE}"}).get("Volumes") or []
            for vol in found:
                if vol["Name"].startswith(f"{ctx.topology.cluster}-pgtemplate-"):
                    api.remove_volume(vol["Name"], force=True)

    try:
        for node in nodes:
            forget_templates()
            t0 = time.monotonic()
            backend.apply(node, Action.CREATE)
            backend.readiness(node).wait()
            alone[node.name] = time.monotonic() - t0
            backend.remove(node, volumes=True)

        node_phase: dict[str, float] = {}

        def on_event(ev: Event) -> None:
            if ev.kind in ("done", "noop") and ev.step in ("create", "recreate", "start", "noop"):
                node_phase[ev.node] = time.monotonic()

        runner.emit = on_event
        forget_templates()
        t0 = time.monotonic()
        first = runner.up()
        nodes_ready = max(node_phase.values()) - t0
        full = first.seconds
        t1 = time.monotonic()
        second = runner.up()
        second_s = time.monotonic() - t1
    finally:
        Runner(ctx, backend).down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)

    slowest_name = max(alone, key=lambda k: alone[k])
    slowest = alone[slowest_name]
    print(f"backend: {backend.name}   nodes: {len(nodes)}")
    for name, secs in alone.items():
        print(f"  {name:<24} alone: {secs:6.2f} s")
    print(f"slowest single node ({slowest_name}):        {slowest:6.2f} s")
    print(f"`up`, nodes launched and ready:           {nodes_ready:6.2f} s   ratio {nodes_ready / slowest:4.2f}"
          f"  (goal <= 1.3)")
    print(f"`up`, with schema/replication/FDW/stores: {full:6.2f} s   ratio {full / slowest:4.2f}")
    print(f"second `up` (no changes: {not second.changed}):      {second_s:6.2f} s   (goal <= 2 s)")
    return 0


def cold_up(path: Path, backend: str, image: str | None) -> float:
    """One `up` of a fresh cluster on `backend`, then `down --volumes`; the `up` seconds."""
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-"))
    work.chmod(0o755)
    data = bench_topology(path, backend, image)
    data["cluster"] = f"bench-{backend}-{time.monotonic_ns() % 10**8}"
    data["bind"] = "0.0.0.0" if backend == "swarm" else "127.0.0.1"  # Swarm publishes on every interface
    ctx = context(data, work)
    runner = Runner(ctx, select_backend(ctx, backend))
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
