"""How close is the gateway to bare FastAPI? A cached `GET /api/v1/content/{id}` against a hello endpoint.

    python bench/gateway.py [--workers 1] [--connections 64] [--duration 10] [--rounds 3] [--threads 1]

1. Brings up a throw-away local cluster (examples/no-citus.yaml on fresh ports, MongoDB off), inserts one
   title and warms its cache entry.
2. Runs the gateway and a bare FastAPI app (bench/hello_app.py) under the same uvicorn settings, one
   after the other, and drives each with the same wrk command (Debian's `wrk`), loopback only.
3. Prints requests/s of both, their ratio (goal >= 0.5) and p99 latencies (goal < 20 ms at 64
   connections). Never gates anything: the figures are for people. Tears everything down.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from common import free_port  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.gateway.app import ENV_STATE_DIR, ENV_TOPOLOGY
from streamctl.runner import Runner

ROOT = Path(__file__).resolve().parent.parent


def write_topology(directory: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "no-citus.yaml").read_text())
    data.update(cluster="bench-gateway", backend="local", state_dir=str(directory / "state"))
    data.pop("secrets", None)
    data["metadata"]["coordinator"]["port"] = free_port()
    data["analytics"]["primary"]["port"] = free_port()
    for replica in data["analytics"]["replicas"]:
        replica["port"] = free_port()
    data["mongo"]["enabled"] = False
    data["redis"]["port"] = free_port()
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def insert_title(ctx: ClusterContext) -> uuid.UUID:
    cid = uuid.uuid4()
    with ctx.pg_connect(ctx.topology.metadata.coordinator.name, ctx.topology.metadata.database) as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type, release_date, "
                     "duration_minutes, rating, summary) VALUES (%s, 'Benchmark', 'movie', '2020-01-01', 100, "
                     "7.1, 'A title to read again and again')", (cid,))
    return cid


def start_server(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # readiness: the port answers HTTP
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"server did not start: {' '.join(argv)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, args: argparse.Namespace) -> tuple[float, float, int]:
    """requests/s, p99 in ms, and non-2xx count, from one wrk run."""
    # A short warm-up first: connection set-up and first-request costs are not what we compare.
    subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True, check=True)
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(non2xx.group(1)) if non2xx else 0


def uvicorn_argv(target: str, port: int, workers: int, factory: bool, app_dir: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    if factory:
        argv.append("--factory")
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, for both apps")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per app")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-gw-"))
    os.chmod(work, 0o755)  # the unprivileged PostgreSQL user must reach the state directory
    topology_path = write_topology(work)
    ctx = ClusterContext.build(load_topology(topology_path), topology_path)
    runner = Runner(ctx, LocalBackend(ctx), timeout=120)
    runs: dict[str, tuple[str, list[tuple[float, float, int]]]] = {}
    try:
        runner.up()
        cid = insert_title(ctx)
        env = {**os.environ, ENV_TOPOLOGY: str(topology_path)}
        env.pop(ENV_STATE_DIR, None)
        apps = (("gateway GET /api/v1/content/{id} (cached)", "streamctl.gateway.app:app_from_env",
                 f"/api/v1/content/{cid}", True, None),
                ("bare FastAPI GET /hello", "hello_app:app", "/hello", False, ROOT / "bench"))
        servers = []
        try:
            for name, target, path, factory, app_dir in apps:
                port = free_port()
                servers.append(start_server(uvicorn_argv(target, port, args.workers, factory, app_dir), env, port))
                url = f"http://127.0.0.1:{port}{path}"
                with urllib.request.urlopen(url, timeout=5) as resp:  # fills the cache entry
                    assert resp.status == 200
                runs[name] = (url, [])
            # Alternate the two apps round by round: a machine whose load drifts affects both alike.
            for _ in range(args.rounds):
                for _name, (url, samples) in runs.items():
                    samples.append(wrk(url, args))
        finally:
            for proc in servers:
                stop(proc)
    finally:
        runner.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s x {args.rounds} alternating rounds "
          f"(median shown), uvicorn --workers {args.workers}, {os.cpu_count()} CPUs shared by wrk and servers")
    medians = {}
    for name, (_url, samples) in runs.items():
        rps = statistics.median(s[0] for s in samples)
        p99 = statistics.median(s[1] for s in samples)
        errors = sum(s[2] for s in samples)
        medians[name] = (rps, p99)
        every = ", ".join(f"{s[0]:.0f}" for s in samples)
        print(f"  {name:<45} {rps:>8.0f} req/s   p99 {p99:7.2f} ms   non-2xx {errors}   (rounds: {every})")
    (g_rps, g_p99), (h_rps, _h_p99) = medians.values()
    ratio = g_rps / h_rps
    print(f"  ratio gateway/bare: {ratio:.2f}  (goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"  gateway p99: {g_p99:.2f} ms  (goal < 20 ms: {'met' if g_p99 < 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
