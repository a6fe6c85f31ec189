"""The platform's Prometheus families, built from a Snapshot with prometheus_client (never hand-written text).

Names are stable and documented in the README (section Metrics); every one starts with `streamctl_`.
The gateway's own HTTP families live in gateway/metrics.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamctl.metrics.collect import Snapshot
from streamctl.verify.last import LastVerify

NODE = ["node", "role", "engine"]
SUBSCRIPTION = ["replica", "subscription"]


def families(snap: Snapshot, cluster: str, verify: LastVerify | None = None) -> list[Metric]:
    """Every family of one snapshot; a family with nothing to say (Citus off, Redis off) has no samples."""
    up = GaugeMetricFamily("streamctl_node_up", "1 when the node answers its probe (a real query, PING) within "
                           "the bound, else 0", labels=NODE)
    healthy = GaugeMetricFamily("streamctl_node_healthy", "1 when the node is up and doing its job (a Citus "
                                "worker active in pg_dist_node, a replica's subscription worker running)",
                                labels=NODE)
    for n in snap.nodes:
        up.add_metric([n.node, n.role, n.engine], float(n.up))
        healthy.add_metric([n.node, n.role, n.engine], float(n.healthy))
    lag_bytes = GaugeMetricFamily("streamctl_replication_lag_bytes", "WAL bytes the replica's subscription slot "
                                  "has not confirmed, as the primary sees it", labels=SUBSCRIPTION)
    lag_seconds = GaugeMetricFamily("streamctl_replication_lag_seconds", "replay lag of the replica's "
                                    "subscription in seconds (0 when caught up and idle)", labels=SUBSCRIPTION)
    slot_active = GaugeMetricFamily("streamctl_replication_slot_active", "1 when the subscriber is connected to "
                                    "its slot", labels=SUBSCRIPTION)
    for x in snap.lag:
        if x.lag_bytes is not None:
            lag_bytes.add_metric([x.replica, x.subscription], float(x.lag_bytes))
        if x.lag_seconds is not None:
            lag_seconds.add_metric([x.replica, x.subscription], x.lag_seconds)
        if x.slot_active is not None:
            slot_active.add_metric([x.replica, x.subscription], float(x.slot_active))
    shards = GaugeMetricFamily("streamctl_citus_shards", "shard placements per node and table",
                               labels=["node", "table"])
    shard_bytes = GaugeMetricFamily("streamctl_citus_shard_bytes", "bytes of a table's shards on a node",
                                    labels=["node", "table"])
    for s in snap.shards:
        shards.add_metric([s.node, s.table], float(s.shards))
        shard_bytes.add_metric([s.node, s.table], float(s.bytes))
    skew = GaugeMetricFamily("streamctl_citus_skew_ratio", "a distributed table's busiest node / mean node, by "
                             "bytes (1 is even)", labels=["table"])
    for table, ratio in sorted(snap.skew.items()):
        skew.add_metric([table], ratio)
    rows = GaugeMetricFamily("streamctl_table_rows_estimate", "the planner's row estimate of a table (node "
                             "`citus` for a Citus table: the sum over its shards)", labels=["node", "table"])
    for (node, table), value in sorted(snap.rows.items()):
        rows.add_metric([node, table], float(value))
    out: list[Metric] = [up, healthy, lag_bytes, lag_seconds, slot_active, shards, shard_bytes, skew, rows]
    views = CounterMetricFamily("streamctl_views", "views counted through the gateway (Redis views:total)")
    trending = GaugeMetricFamily("streamctl_trending_size", "titles in today's trending set (UTC day)",
                                 labels=["day"])
    if snap.views_total is not None:
        views.add_metric([], float(snap.views_total))
    if snap.trending_size is not None:
        trending.add_metric([snap.trending_day], float(snap.trending_size))
    out += [views, trending]
    archived = CounterMetricFamily("streamctl_wal_archived", "WAL files archived (pg_stat_archiver), nodes "
                                   "with archive_mode on", labels=["node"])
    archive_failed = CounterMetricFamily("streamctl_wal_archive_failed", "failed WAL archiving attempts "
                                         "(pg_stat_archiver), nodes with archive_mode on", labels=["node"])
    for node, (ok_count, failed_count) in sorted(snap.archiver.items()):
        archived.add_metric([node], float(ok_count))
        archive_failed.add_metric([node], float(failed_count))
    out += [archived, archive_failed]
    if snap.collected_at:
        ok = GaugeMetricFamily("streamctl_collect_ok", "1 when the last collection's section succeeded",
                               labels=["section"])
        for section in ("nodes", "replication", "citus" if snap.citus else "metadata", "redis"):
            ok.add_metric([section], 0.0 if section in snap.errors else 1.0)
        out.append(ok)
        out.append(GaugeMetricFamily("streamctl_collect_timestamp_seconds", "unix time of the last collection",
                                     value=snap.collected_at))
        out.append(GaugeMetricFamily("streamctl_collect_duration_seconds", "how long the last collection took",
                                     value=snap.duration_seconds))
    if verify is not None:
        passed = GaugeMetricFamily("streamctl_verify_passed", "1 when the check passed (or was skipped) in the "
                                   "last stored `streamctl verify`, else 0", labels=["check"])
        for check, ok_ in sorted(verify.checks.items()):
            passed.add_metric([check], float(ok_))
        out.append(passed)
        out.append(GaugeMetricFamily("streamctl_verify_timestamp_seconds", "unix time of the last stored verify",
                                     value=verify.finished_at))
    info = GaugeMetricFamily("streamctl_cluster_info", "the cluster the figures are of", labels=["cluster"])
    info.add_metric([cluster], 1.0)
    out.append(info)
    return out


class SnapshotCollector(Collector):
    """A prometheus_client collector that serves whatever snapshot `current` returns (no query per scrape)."""

    def __init__(self, current: Callable[[], Snapshot], cluster: str,
                 verify: Callable[[], LastVerify | None] = lambda: None) -> None:
        self.current, self.cluster, self.verify = current, cluster, verify

    def collect(self) -> Iterator[Metric]:
        yield from families(self.current(), self.cluster, self.verify())


def prometheus_text(snap: Snapshot, cluster: str, verify: LastVerify | None = None) -> str:
    """One snapshot in the Prometheus text format (for `streamctl metrics --prometheus`)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snap, cluster, lambda: verify))
    return generate_latest(registry).decode()
