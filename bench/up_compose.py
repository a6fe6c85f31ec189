"""`bench/up.py --compose`: Docker Compose v2 against `streamctl up`, same images, alternating rounds.

Compose runs the exported compose file (`streamctl compose export`) with `up -d --wait`, its
healthchecks polling every second (the fair footing: the exported 10 s interval makes compose wait up to
10 s for a healthy state it already had); that is containers merely healthy. `streamctl up` runs to fully
configured (databases, schema, replication, FDW, roles). Each round uses a fresh cluster name and ports,
and removes everything afterwards. The compose binary: --compose-bin, $STREAMCTL_COMPOSE_BIN, or
bench/.tools/docker-compose (bench/get-compose.sh unpacks Debian 13's v2 plugin there, privately).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from topology import bench_topology, context  # bench/topology.py

from streamctl.backends import select_backend
from streamctl.compose import compose_dict, secret_variable
from streamctl.runner import Runner

TOOLS = Path(__file__).resolve().parent / ".tools"


def find_compose(given: str | None) -> str:
    for candidate in (given, os.environ.get("STREAMCTL_COMPOSE_BIN"), str(TOOLS / "docker-compose")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("no Docker Compose v2 binary: run bench/get-compose.sh or pass --compose-bin")


def compose_round(binary: str, data: dict[str, Any], work: Path, later: list[Callable[[], None]]) -> float:
    ctx = context(data, work)
    project = compose_dict(ctx.topology)
    for service in project["services"].values():
        service["healthcheck"]["interval"] = "1s"
    path = work / "compose.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    secrets = ctx.store.secrets(ctx.topology, create=True)
    env = {**os.environ, **{secret_variable(k): v for k, v in secrets.items()}}
    argv = [binary, "-f", str(path), "-p", ctx.topology.cluster]
    later.append(lambda: subprocess.run([*argv, "down", "-v"], env=env, capture_output=True))
    t0 = time.monotonic()
    try:
        subprocess.run([*argv, "up", "-d", "--wait"], env=env, check=True, capture_output=True)
        return time.monotonic() - t0
    finally:
        subprocess.run([*argv, "stop"], env=env, capture_output=True)


def streamctl_round(data: dict[str, Any], work: Path, later: list[Callable[[], None]]) -> float:
    ctx = context({**data, "backend": "docker"}, work)
    backend = select_backend(ctx)
    later.append(lambda: Runner(ctx, backend).down(volumes=True))
    t0 = time.monotonic()
    try:
        Runner(ctx, backend).up()
        return time.monotonic() - t0
    finally:
        Runner(ctx, backend).down(volumes=False)


def run(topology: Path, image: str | None, rounds: int, compose_bin: str | None) -> int:
    binary = find_compose(compose_bin)
    times: dict[str, list[float]] = {"compose": [], "streamctl": []}
    # Everything is stopped after its round and removed only at the end: deleting a cluster's thousands of
    # files right before the next round would slow that round's file creation (bench/up.py: fresh_cluster).
    later: list[Callable[[], None]] = []
    works: list[Path] = []
    try:
        for i in range(rounds):
            order = ("compose", "streamctl") if i % 2 == 0 else ("streamctl", "compose")
            for who in order:
                work = Path(tempfile.mkdtemp(prefix="streamctl-bench-compose-"))
                work.chmod(0o755)
                works.append(work)
                data = bench_topology(topology, "docker", image)
                times[who].append(compose_round(binary, data, work, later) if who == "compose" else
                                  streamctl_round(data, work, later))
    finally:
        for undo in later:
            undo()
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
    version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; {rounds} alternating rounds, same images (busy machine: runs listed)")
    for who, label in (("compose", "compose up -d --wait (healthy, 1 s healthchecks)"),
                       ("streamctl", "streamctl up (fully configured)")):
        runs = ", ".join(f"{t:.2f}" for t in times[who])
        print(f"  {label:<50} median {statistics.median(times[who]):6.2f} s   runs [{runs}]")
    ratio = statistics.median(times["streamctl"]) / statistics.median(times["compose"])
    print(f"streamctl / compose: {ratio:4.2f}   (goal <= 1.0)")
    return 0
