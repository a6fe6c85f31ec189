"""The last minutes of the metrics, one point per background collection, for the dashboard's charts.

Rates and the p99 come from differences between two collections: views per second from Redis's
views:total, requests per second and the p99 latency from the request histogram (every worker's, in
multiprocess mode). Kept in memory: a restarted gateway starts a new history.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from streamctl.metrics.collect import Snapshot

KEEP_SECONDS = 600.0


@dataclass(frozen=True)
class HttpTotals:
    """Requests so far, and the latency histogram's cumulative buckets (upper bound, count), over all routes."""

    requests: float
    buckets: tuple[tuple[float, float], ...]


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets (linear inside the bucket)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


class History:
    """A ring of points; `add` is called by the collector thread, `points` by the route."""

    def __init__(self, interval: float, keep_seconds: float = KEEP_SECONDS) -> None:
        self.interval = interval
        self._points: deque[dict[str, object]] = deque(maxlen=max(2, int(keep_seconds / interval)))
        self._last: tuple[Snapshot, HttpTotals] | None = None
        self._lock = threading.Lock()

    def add(self, snap: Snapshot, http: HttpTotals) -> None:
        point: dict[str, object] = {
            "t": snap.collected_at,
            "lag_seconds": {x.replica: x.lag_seconds for x in snap.lag},
            "lag_bytes": {x.replica: x.lag_bytes for x in snap.lag},
            "shard_bytes": _per_node(snap), "nodes_down": [n.node for n in snap.nodes if not n.up],
            "views_per_second": None, "requests_per_second": None, "p99_seconds": None,
        }
        with self._lock:
            if self._last is not None:
                before, was = self._last
                dt = snap.collected_at - before.collected_at
                if dt > 0:
                    if snap.views_total is not None and before.views_total is not None:
                        point["views_per_second"] = max(0.0, (snap.views_total - before.views_total) / dt)
                    point["requests_per_second"] = max(0.0, (http.requests - was.requests) / dt)
                    previous = dict(was.buckets)
                    point["p99_seconds"] = quantile(0.99, [(b, c - previous.get(b, 0.0)) for b, c in http.buckets])
            self._last = (snap, http)
            self._points.append(point)

    def points(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self._points)

    def continue_from(self, points: list[dict[str, object]]) -> None:
        """Take over another worker's points (it collected until now): the charts go on without a gap."""
        with self._lock:
            self._points.extend(points[-(self._points.maxlen or len(points)):])


def _per_node(snap: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in snap.shards:
        out[s.node] = out.get(s.node, 0) + s.bytes
    return out
