"""GET /metrics: the platform's figures from a background collector, and the gateway's own requests.

A thread runs `streamctl.metrics.collect` every `gateway.metrics_interval` seconds (as the gateway's
least-privilege role, every probe bounded); a scrape only formats the last snapshot, so it never fans out
queries to the nodes. Requests are counted and timed per route template and status by a plain ASGI
middleware. With several uvicorn workers, `PROMETHEUS_MULTIPROC_DIR` (set by `streamctl gateway`) makes
the HTTP families add up over the workers (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from streamctl.atomic import write_file
from streamctl.context import ClusterContext
from streamctl.gateway.history import History, HttpTotals
from streamctl.gateway.schemas import HistoryPoint, MetricsHistory, NodeUp
from streamctl.metrics.collect import Snapshot, collect, gateway_login
from streamctl.metrics.families import SnapshotCollector
from streamctl.verify.last import LastVerifyFile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION = "streamctl_http_request_duration_seconds"
SHARED = "collector.pickle"  # the collecting worker's snapshot and history, for the other workers
UNMATCHED = "<unmatched>"  # every path no route knows shares one label, so scanners cannot grow the series

router = APIRouter(include_in_schema=False)


class Background:
    """The collector thread, the last snapshot it made, and the history of the last minutes.

    With several uvicorn workers (multiprocess mode) one worker collects for all: the first to take an
    flock in the metrics directory; it writes each snapshot and the history there (a private directory,
    replaced atomically), and the others read that file. When the collecting worker exits its lock goes
    with it and another worker takes over within an interval. So the nodes see one collector, and every
    worker answers with the same history."""

    def __init__(self, ctx: ClusterContext, interval: float) -> None:
        self.ctx, self.interval = ctx, interval
        self._snapshot = Snapshot()
        self.history = History(interval)
        self.http_totals: Callable[[], HttpTotals] = lambda: HttpTotals(0.0, ())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamctl-metrics", daemon=True)
        shared = os.environ.get(MULTIPROC_ENV)
        self._dir = Path(shared) if shared else None
        self._lock_fd: int | None = None
        self._read_at = 0.0  # mtime of the shared file last read
        self._points: list[dict[str, object]] | None = None  # the collecting worker's history (a reader)

    @property
    def leader(self) -> bool:
        return self._dir is None or self._lock_fd is not None

    @property
    def snapshot(self) -> Snapshot:
        self._read_shared()
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: Snapshot) -> None:
        self._snapshot = value

    def points(self) -> list[dict[str, object]]:
        self._read_shared()
        return self.history.points() if self._points is None else list(self._points)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            if self._take_turn():
                try:
                    self._snapshot = collect(self.ctx, gateway_login)
                except Exception as exc:  # noqa: BLE001 - the collector must outlive any one failure
                    self._snapshot = Snapshot(collected_at=time.time(), errors={"collect": str(exc)[:200]})
                with contextlib.suppress(Exception):  # a chart point lost is no reason to stop collecting
                    self.history.add(self._snapshot, self.http_totals())
                with contextlib.suppress(OSError):
                    self._write_shared()
            self._stop.wait(max(0.1, self.interval - (time.monotonic() - started)))

    # -- one collector for every worker ------------------------------------------------------------
    def _take_turn(self) -> bool:
        """Whether this process collects: always alone; with workers, the one holding the lock."""
        if self.leader:
            return True
        assert self._dir is not None
        fd = os.open(self._dir / "collector.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        if self._points:
            self.history.continue_from(self._points)
        self._lock_fd, self._points = fd, None
        return True

    def _write_shared(self) -> None:
        if self._dir is None:
            return
        write_file(self._dir / SHARED, pickle.dumps((self._snapshot, self.history.points())))

    def _read_shared(self) -> None:
        """A reader's view: the collecting worker's latest file, read again only when it changed."""
        if self.leader or self._dir is None:
            return
        try:
            mtime = (self._dir / SHARED).stat().st_mtime
            if mtime == self._read_at:
                return
            # the directory is this gateway's own (0700), written only by its workers
            self._snapshot, self._points = pickle.loads((self._dir / SHARED).read_bytes())  # noqa: S301
            self._read_at = mtime
        except (OSError, EOFError, pickle.UnpicklingError):
            return


class Instruments:
    """The gateway's HTTP families and the registry a scrape reads."""

    def __init__(self, ctx: ClusterContext, background: Background) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("streamctl_http_requests", "requests the gateway answered",
                                ["route", "method", "status"], registry=self.registry)
        self.duration = Histogram(DURATION, "time from request to the last "
                                  "byte of the answer", ["route", "method", "status"], buckets=BUCKETS,
                                  registry=self.registry)
        self.platform = SnapshotCollector(lambda: background.snapshot, ctx.topology.cluster,
                                          LastVerifyFile(ctx.store.root))
        self.registry.register(self.platform)
        background.http_totals = self.http_totals

    def _registry(self) -> CollectorRegistry:
        """This process's registry, or in multiprocess mode one that reads every worker's files."""
        if not os.environ.get(MULTIPROC_ENV):
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.platform)
        return registry

    def scrape(self) -> bytes:
        return generate_latest(self._registry())

    def http_totals(self) -> HttpTotals:
        """Every route's requests and latency buckets added up (for the dashboard's rate and p99)."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            families = multiprocess.MultiProcessCollector(None).collect()
        else:
            families = self.duration.collect()
        count, buckets = 0.0, dict.fromkeys(BUCKETS + (float("inf"),), 0.0)
        for family in families:
            if family.name != DURATION:
                continue
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return HttpTotals(count, tuple(sorted(buckets.items())))


class RequestMetrics:
    """Plain ASGI middleware: one counter and one histogram observation per HTTP request."""

    def __init__(self, app: Any, instruments: Instruments) -> None:
        self.app, self.requests, self.duration = app, instruments.requests, instruments.duration

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            labels = (path, scope["method"], str(status))
            self.requests.labels(*labels).inc()
            self.duration.labels(*labels).observe(time.perf_counter() - started)


@router.get("/api/v1/ops/history", response_model=MetricsHistory, operation_id="getMetricsHistory",
            include_in_schema=True, tags=["operations"])
async def history(request: Request) -> MetricsHistory:
    """The last minutes of the metrics, one point per background collection (the dashboard's charts), and
    each node's state in the latest collection."""
    background: Background = request.app.state.background
    snap = background.snapshot
    return MetricsHistory(interval=background.interval, citus=snap.citus,
                          nodes=[NodeUp(**vars(n)) for n in snap.nodes],
                          points=[HistoryPoint.model_validate(p) for p in background.points()])


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format: the last background snapshot plus the gateway's request families."""
    instruments: Instruments = request.app.state.instruments
    return Response(instruments.scrape(), media_type=CONTENT_TYPE_LATEST)
