"""How close is the gateway to bare FastAPI, with TLS and without? A cached `GET /api/v1/content/{id}`
against a hello endpoint.

    python bench/gateway.py [--workers 1] [--connections 64] [--duration 10] [--rounds 3] [--threads 1]
                            [--modes tls,plain]

1. Brings up a throw-away local cluster per mode (examples/no-citus.yaml on fresh ports, MongoDB off):
   `tls` (the default: the gateway's pools and cache reader verify TLS to PostgreSQL and Redis, and both
   apps serve HTTPS with a certificate from the cluster CA) and `plain` (`tls: false`, HTTP). Inserts one
   title and warms its cache entry.
2. Runs the gateway and a bare FastAPI app (bench/hello_app.py) of each mode under the same uvicorn
   settings, and drives each with the same wrk command (Debian's `wrk`), loopback only, all servers
   alternating round by round.
3. Prints requests/s, the ratio gateway/bare per mode (goal >= 0.5) and p99 latencies (goal < 20 ms at
   64 connections). Never gates anything: the figures are for people. Tears everything down.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import ssl
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

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.gateway.app import ENV_STATE_DIR, ENV_TOPOLOGY
from streamctl.runner import Runner
from streamctl.tls.material import GATEWAY, gateway_names

ROOT = Path(__file__).resolve().parent.parent


def write_topology(directory: Path, tls: bool) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "no-citus.yaml").read_text())
    data.update(cluster=f"bench-gateway-{'tls' if tls else 'plain'}", backend="local",
                state_dir=str(directory / "state"), tls=tls)
    data.pop("secrets", None)
    data["metadata"]["coordinator"]["port"] = free_port()
    data["analytics"]["primary"]["port"] = free_port()
    for replica in data["analytics"]["replicas"]:
        replica["port"] = free_port()
    data["mongo"]["enabled"] = False
    data["redis"]["port"] = free_port()
    path = directory / f"topology-{'tls' if tls else 'plain'}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def insert_title(ctx: ClusterContext) -> uuid.UUID:
    cid = uuid.uuid4()
    with ctx.pg_connect(ctx.topology.metadata.coordinator.name, ctx.topology.metadata.database) as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type, release_date, "
                     "duration_minutes, rating, summary) VALUES (%s, 'Benchmark', 'movie', '2020-01-01', 100, "
                     "7.1, 'A title to read again and again')", (cid,))
    return cid


def start_server(argv: list[str], env: dict[str, str], base: str,
                 context: ssl.SSLContext | None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # readiness: the port answers HTTP
        try:
            with urllib.request.urlopen(f"{base}/openapi.json", timeout=2, context=context):
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


def uvicorn_argv(target: str, port: int, workers: int, factory: bool, app_dir: Path | None,
                 cert: tuple[str, str] | None) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    if cert is not None:
        argv += ["--ssl-certfile", cert[0], "--ssl-keyfile", cert[1]]
    if factory:
        argv.append("--factory")
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


def wrk_parser(doc: str, workers: int) -> argparse.ArgumentParser:
    """The options of a benchmark driven by wrk: uvicorn workers, wrk's connections and threads, the seconds of
    a measured run and how many alternating rounds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=workers, help="uvicorn workers (every app alike)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per setting")
    return parser


def main() -> None:
    parser = wrk_parser(__doc__ or "", workers=1)
    parser.add_argument("--modes", default="tls,plain", help="tls (verified TLS everywhere, HTTPS) and/or plain")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-gw-"))
    os.chmod(work, 0o755)  # the unprivileged PostgreSQL user must reach the state directory
    runners = []
    runs: dict[str, tuple[str, list[tuple[float, float, int]]]] = {}
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for mode in modes:
            topology_path = write_topology(work, tls=mode == "tls")
            ctx = ClusterContext.build(load_topology(topology_path), topology_path)
            runner = Runner(ctx, LocalBackend(ctx), timeout=120)
            runners.append(runner)
            runner.up()
            cid = insert_title(ctx)
            cert, context, scheme = None, None, "http"
            if mode == "tls":
                ctx.tls.ensure(GATEWAY, gateway_names(ctx.topology, "127.0.0.1"))
                cert = (str(ctx.tls.deployed_cert(GATEWAY)), str(ctx.tls.deployed_key(GATEWAY)))
                context, scheme = ssl.create_default_context(cafile=ctx.ca_path()), "https"
            env = {**os.environ, ENV_TOPOLOGY: str(topology_path)}
            env.pop(ENV_STATE_DIR, None)
            apps = ((f"[{mode}] gateway GET /api/v1/content/{{id}} (cached)", "streamctl.gateway.app:app_from_env",
                     f"/api/v1/content/{cid}", True, None),
                    (f"[{mode}] bare FastAPI GET /hello", "hello_app:app", "/hello", False, ROOT / "bench"))
            for name, target, path, factory, app_dir in apps:
                port = free_port()
                base = f"{scheme}://127.0.0.1:{port}"
                servers.append(start_server(uvicorn_argv(target, port, args.workers, factory, app_dir, cert), env,
                                            base, context))
                with urllib.request.urlopen(base + path, timeout=5, context=context) as resp:  # fills the cache
                    assert resp.status == 200
                runs[name] = (base + path, [])
        # Alternate every app round by round: a machine whose load drifts affects all alike.
        for _ in range(args.rounds):
            for _name, (url, samples) in runs.items():
                samples.append(wrk(url, args))
    finally:
        for proc in servers:
            stop(proc)
        for runner in runners:
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
        print(f"  {name:<53} {rps:>8.0f} req/s   p99 {p99:7.2f} ms   non-2xx {errors}   (rounds: {every})")
    values = list(medians.values())
    for i, mode in enumerate(modes):
        (g_rps, g_p99), (h_rps, _h_p99) = values[2 * i], values[2 * i + 1]
        ratio = g_rps / h_rps
        print(f"  [{mode}] ratio gateway/bare: {ratio:.2f}  (goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}); "
              f"gateway p99 {g_p99:.2f} ms (goal < 20 ms: {'met' if g_p99 < 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
