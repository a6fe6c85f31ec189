"""What does GET /metrics cost? The gateway's throughput and p99 with and without a Prometheus-like scraper,
and the scrape's own latency, with 3 uvicorn workers.

    [STREAMCTL_TEST_PG_BINDIR=<bin dir with Citus>] python bench/metrics.py [--workers 3] [--connections 64]
                                                    [--duration 10] [--rounds 3] [--interval 1]

1. Brings up a throw-away local cluster (Citus with 2 workers when the PostgreSQL binaries have it, an
   analytics primary and replica, Redis; MongoDB off) and inserts one title, warming its cache entry.
2. Runs `streamctl gateway`'s app (the uvicorn factory, PROMETHEUS_MULTIPROC_DIR as the command sets it)
   and drives the cached GET /api/v1/content/{id} with wrk (loopback only), alternating round by round:
   without a scraper, and with a scraper that GETs /metrics every `--interval` seconds.
3. Then 200 scrapes back to back on the idle gateway. Prints requests/s and p99 side by side, their ratio
   (goal: within 10%), and the scrape's p50/p99 under load and idle (goal: p99 <= 50 ms). Never gates
   anything: the figures are for people. Tears everything down.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from common import free_port, free_port_run  # bench/common.py (benchmarks run as scripts)
from gateway import insert_title, start_server, stop, uvicorn_argv, wrk, wrk_parser  # bench/gateway.py

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.gateway.app import ENV_STATE_DIR, ENV_TOPOLOGY
from streamctl.gateway.metrics import MULTIPROC_ENV
from streamctl.runner import Runner


def write_topology(work: Path, citus: bool) -> Path:
    data: dict[str, Any] = {
        "version": 1, "cluster": f"bench-metrics-{time.time_ns() % 10**8}", "backend": "local",
        "state_dir": str(work / "state"), "tls": False,
        "metadata": {"citus": {"enabled": citus, "shard_count": 8}, "coordinator": {"port": free_port()},
                     "workers": {"count": 2 if citus else 0, "port": free_port_run(2)}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": "analytics-replica-1", "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"port": free_port()},
    }
    if os.environ.get("STREAMCTL_TEST_PG_BINDIR"):
        data["local"] = {"pg_bindir": os.environ["STREAMCTL_TEST_PG_BINDIR"]}
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def scrape(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
        assert resp.status == 200
    return time.perf_counter() - started


class Scraper(threading.Thread):
    """GET /metrics every `interval` seconds until stopped; keeps each scrape's latency."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.latencies: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.latencies.append(scrape(self.url))


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = wrk_parser(__doc__ or "", workers=3)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two scrapes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    citus = bool(os.environ.get("STREAMCTL_TEST_PG_BINDIR"))
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-metrics-"))
    os.chmod(work, 0o755)  # the unprivileged PostgreSQL user must reach the state directory
    topology_path = write_topology(work, citus)
    ctx = ClusterContext.build(load_topology(topology_path), topology_path)
    runner = Runner(ctx, LocalBackend(ctx), timeout=180)
    server = None
    plain: list[tuple[float, float, int]] = []
    scraped: list[tuple[float, float, int]] = []
    under_load: list[float] = []
    try:
        runner.up()
        cid = insert_title(ctx)
        metrics_dir = ctx.store.root / "gateway-metrics"
        metrics_dir.mkdir(mode=0o700)
        env = {**os.environ, ENV_TOPOLOGY: str(topology_path), MULTIPROC_ENV: str(metrics_dir)}
        env.pop(ENV_STATE_DIR, None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(uvicorn_argv("streamctl.gateway.app:app_from_env", port, args.workers, True, None,
                                           None), env, base, None)
        with urllib.request.urlopen(f"{base}/api/v1/content/{cid}", timeout=5) as resp:  # fills the cache
            assert resp.status == 200
        ready = 0
        deadline = time.monotonic() + 60
        while ready < 10 and time.monotonic() < deadline:  # readiness: every worker's collector has a snapshot
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
                ready = ready + 1 if b"streamctl_collect_timestamp_seconds " in resp.read() else 0
            time.sleep(0.1)
        url = f"{base}/api/v1/content/{cid}"
        for _ in range(args.rounds):
            plain.append(wrk(url, args))
            scraper = Scraper(f"{base}/metrics", args.interval)
            scraper.start()
            scraped.append(wrk(url, args))
            scraper.done.set()
            scraper.join()
            under_load.extend(scraper.latencies)
        idle = [scrape(f"{base}/metrics") for _ in range(200)]
    finally:
        if server is not None:
            stop(server)
        runner.down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s x {args.rounds} alternating rounds "
          f"(median shown), uvicorn --workers {args.workers}, Citus {'on (2 workers)' if citus else 'off'}, "
          f"{os.cpu_count()} CPUs shared by wrk, the gateway and the cluster")
    rows = {"cached GET, no scraper": plain, f"cached GET, /metrics every {args.interval:g} s": scraped}
    medians = {}
    for name, samples in rows.items():
        rps = statistics.median(s[0] for s in samples)
        p99 = statistics.median(s[1] for s in samples)
        medians[name] = (rps, p99)
        every = ", ".join(f"{s[0]:.0f}" for s in samples)
        print(f"  {name:<40} {rps:>8.0f} req/s   p99 {p99:7.2f} ms   non-2xx {sum(s[2] for s in samples)}"
              f"   (rounds: {every})")
    (a_rps, a_p99), (b_rps, b_p99) = medians.values()
    ratio = b_rps / a_rps
    print(f"  ratio with/without scraper: throughput {ratio:.3f}, p99 {b_p99 / a_p99:.3f}  "
          f"(goal: within 10%: {'met' if abs(1 - ratio) <= 0.10 else 'NOT met'})")
    print(f"  scrape latency under load ({len(under_load)} scrapes): p50 {p(under_load, 0.5):.2f} ms, "
          f"p99 {p(under_load, 0.99):.2f} ms; idle (200): p50 {p(idle, 0.5):.2f} ms, p99 {p(idle, 0.99):.2f} ms "
          f"(goal p99 <= 50 ms: {'met' if p(idle, 0.99) <= 50 else 'NOT met'} idle)")


if __name__ == "__main__":
    sys.exit(main())
