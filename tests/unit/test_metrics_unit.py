"""Pure parts of the gateway guard, the metrics and the monitoring node: route patterns, the p99 of a
histogram, the families of a snapshot, the alert rules file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from streamctl.config.load import parse_topology
from streamctl.errors import ConfigError
from streamctl.gateway.guard import OpsTokenGuard, ensure_token, route_pattern
from streamctl.gateway.history import History, HttpTotals, quantile
from streamctl.metrics.collect import LagSample, NodeSample, ShardSample, Snapshot
from streamctl.metrics.families import prometheus_text
from streamctl.monitoring.prometheus import rules_text
from tests.support.cluster import topology_dict


def config_errors(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_topology(data)
    return " ".join([err.value.message, *err.value.details])


def test_public_routes_match_exact_paths_segments_and_rests() -> None:
    pattern = route_pattern(["/api/v1/content/ids", "/api/v1/content/{id}", "/static/*"])
    assert pattern is not None
    for path in ("/api/v1/content/ids", "/api/v1/content/abc", "/static/dashboard.js", "/static/a/b"):
        assert pattern.fullmatch(path), path
    for path in ("/api/v1/content/users/ids", "/api/v1/content/abc/reviews", "/", "/metrics",
                 "/api/v1/content/ids/x"):
        assert not pattern.fullmatch(path), path
    assert route_pattern([]) is None


@pytest.mark.parametrize("bad", ["api/v1", "/a/*/b", "/a b", ""])
def test_a_malformed_public_route_is_a_topology_error(bad: str) -> None:
    assert "gateway.public_routes" in config_errors(topology_dict(gateway={"public_routes": [bad]}))


def test_the_guard_refuses_to_exist_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OpsTokenGuard(None, "")
    (tmp_path / "gateway-token").write_text("\n")
    with pytest.raises(Exception, match="is empty"):
        ensure_token(tmp_path)
    (tmp_path / "gateway-token").unlink()
    token = ensure_token(tmp_path)
    assert len(token) >= 32 and ensure_token(tmp_path) == token
    assert (tmp_path / "gateway-token").stat().st_mode & 0o777 == 0o600


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.01, 50.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 49 / 50)
    assert quantile(0.99, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_history_rates_come_from_two_collections() -> None:
    h = History(interval=1.0)
    h.add(Snapshot(collected_at=100.0, views_total=10), HttpTotals(5.0, ((0.01, 5.0), (float("inf"), 5.0))))
    h.add(Snapshot(collected_at=102.0, views_total=30), HttpTotals(25.0, ((0.01, 25.0), (float("inf"), 25.0))))
    first, second = h.points()
    assert first["views_per_second"] is None
    assert second["views_per_second"] == 10.0 and second["requests_per_second"] == 10.0
    assert second["p99_seconds"] == pytest.approx(0.01 * 0.99)


def test_a_snapshot_becomes_the_documented_families() -> None:
    snap = Snapshot(collected_at=1.0, citus=True,
                    nodes=[NodeSample("worker-1", "worker", "postgres", False, False)],
                    lag=[LagSample("r1", "sub_r1", 0, 0.5, True)],
                    shards=[ShardSample("content_metadata", "worker-1", 4, 8192)], skew={"content_metadata": 1.25},
                    views_total=7, trending_day="2026-01-01", trending_size=3)
    found = {f.name: f for f in text_string_to_metric_families(prometheus_text(snap, "c"))}
    assert found["streamctl_node_up"].samples[0].value == 0
    assert found["streamctl_views"].samples[0].name == "streamctl_views_total"
    assert found["streamctl_views"].samples[0].value == 7
    assert found["streamctl_citus_skew_ratio"].samples[0].value == 1.25
    assert found["streamctl_replication_lag_seconds"].samples[0].labels == {"replica": "r1", "subscription": "sub_r1"}


def test_the_alert_rules_are_valid_yaml_with_the_topology_bounds() -> None:
    t = parse_topology(topology_dict(monitoring={"prometheus": True, "skew_bound": 2.5, "lag_bound_bytes": 1000}))
    rules = yaml.safe_load(rules_text(t))["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rules}
    assert "> 2.5" in by_name["StreamctlCitusSkewHigh"]["expr"]
    assert "> 1000" in by_name["StreamctlReplicationLagHigh"]["expr"]
    assert set(by_name) >= {"StreamctlNodeDown", "StreamctlWalArchivingFailing"}


def test_the_monitoring_node_is_refused_on_swarm_and_without_the_gateway() -> None:
    assert "not on Swarm" in config_errors(topology_dict(backend="swarm", monitoring={"prometheus": True}))
    on_docker = parse_topology(topology_dict(backend="docker", monitoring={"prometheus": True}))
    assert on_docker.monitoring.image == "prom/prometheus:v2.53.0"
    assert "the gateway, which is disabled" in config_errors(topology_dict(monitoring={"prometheus": True},
                                                                gateway={"enabled": False}))
