"""How long does the CLI take before it does anything? Whole processes, side by side, in one run.

    python bench/cli.py [--runs 7] [--backend local|docker] [--image IMG]

Times `python -c pass` (the bare interpreter), `streamctl --version`, `streamctl validate`, `streamctl status`
and a second `streamctl up` on a healthy cluster (brought up first, on fresh ports, taken down at the end),
each as a separate process, and prints min / median per command and its overhead over the bare interpreter.
Goals: --version and validate <= 0.3 s over the interpreter; a second `up` <= 1.0 s as a process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import command, free_port  # bench/common.py (benchmarks run as scripts)

REPO = Path(__file__).resolve().parents[1]


def topology(work: Path, backend: str, image: str | None) -> Path:
    data = yaml.safe_load((REPO / "examples/no-citus.yaml").read_text())
    data.update(cluster=f"bench-cli-{os.getpid()}", backend=backend)
    data["metadata"]["coordinator"]["port"] = free_port()
    data["analytics"]["primary"]["port"] = free_port()
    for replica in data["analytics"].get("replicas", []):
        replica["port"] = free_port()
    for role in ("redis", "gateway"):
        data.setdefault(role, {})["port"] = free_port()
    if image:
        for section in (data["metadata"]["coordinator"], data["analytics"]["primary"], data["redis"]):
            section["image"] = image
        for replica in data["analytics"].get("replicas", []):
            replica["image"] = image
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed(argv: list[str], ok: set[int]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--backend", default="local", choices=["local", "docker"])
    ap.add_argument("--image", default=None, help="one image for every node (Docker, offline)")
    args = ap.parse_args()
    exe = command()  # this environment's executable, as a user runs it
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-cli-"))
    work.chmod(0o755)
    topo = topology(work, args.backend, args.image)
    f = ["-f", str(topo)]
    subprocess.run([*exe, "up", *f], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cases = [("python -c pass", [sys.executable, "-c", "pass"], {0}),
             ("streamctl --version", [*exe, "--version"], {0}),
             ("streamctl validate", [*exe, "validate", *f], {0}),
             ("streamctl status", [*exe, "status", *f], {0, 12}),  # 12: a node is unhealthy
             ("streamctl up (second)", [*exe, "up", *f], {0})]
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    try:
        for _ in range(args.runs):  # interleaved, so background load hits every command alike
            for name, argv, ok in cases:
                times[name].append(timed(argv, ok))
    finally:
        subprocess.run([*exe, "down", "--volumes", "--yes", *f], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    bare = statistics.median(times["python -c pass"])
    goals = {"streamctl --version": ("over python", 0.3), "streamctl validate": ("over python", 0.3),
             "streamctl up (second)": ("total", 1.0)}
    print(f"backend: {args.backend}   runs: {args.runs} (interleaved)")
    print(f"{'command':<24}{'min':>8}{'median':>8}{'over python':>13}   goal")
    for name, samples in times.items():
        med = statistics.median(samples)
        goal = ""
        if name in goals:
            kind, limit = goals[name]
            value = med - bare if kind == "over python" else med
            goal = f"{kind} <= {limit:.1f} s: {'met' if value <= limit else 'NOT met'}"
        print(f"{name:<24}{min(samples):8.3f}{med:8.3f}{med - bare:13.3f}   {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
