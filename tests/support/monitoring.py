"""What the monitoring tests ask a running Prometheus (local process or container): its HTTP API, the
gateway target's health, a node's streamctl_node_up and the StreamctlNodeDown alert."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from streamctl.monitoring.prometheus import PrometheusServer
from streamctl.readiness import Readiness


def api(server: PrometheusServer, path: str) -> Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success"
    return body["data"]


def wait_gateway_target_up(server: PrometheusServer) -> None:
    def gateway_up() -> bool:
        targets = api(server, "/api/v1/targets")["activeTargets"]
        return any(t["labels"]["job"] == "streamctl-gateway" and t["health"] == "up" for t in targets)

    Readiness("Prometheus sees the gateway up", gateway_up, timeout=90, interval=0.5).wait()


def wait_node_up(server: PrometheusServer, node: str) -> None:
    """A scrape after the gateway's first collection has the node's streamctl_node_up at 1."""
    query = urllib.parse.quote(f'streamctl_node_up{{node="{node}"}}')

    def up() -> bool:
        found = api(server, f"/api/v1/query?query={query}")
        return bool(found["result"]) and found["result"][0]["value"][1] == "1"

    Readiness(f"Prometheus has {node}'s streamctl_node_up 1", up, timeout=90, interval=0.5).wait()


def node_down_alerts(server: PrometheusServer) -> set[str]:
    """The nodes StreamctlNodeDown fires for."""
    alerts = api(server, "/api/v1/alerts")["alerts"]
    return {a["labels"].get("node") for a in alerts
            if a["labels"]["alertname"] == "StreamctlNodeDown" and a["state"] == "firing"}


def wait_node_down_fires(server: PrometheusServer, node: str) -> None:
    Readiness(f"StreamctlNodeDown fires for {node}", lambda: node in node_down_alerts(server), timeout=90,
              interval=0.5).wait()


def assert_alerts_when_a_node_stops(server: PrometheusServer, c: Any, node: str) -> None:
    """With the gateway scraped and `node` seen up, stopping `node` (of cluster `c`) fires StreamctlNodeDown
    for it, and for nothing else."""
    wait_gateway_target_up(server)
    wait_node_up(server, node)
    found = c.topology.node(node)
    assert found is not None
    c.backend.stop(found)
    wait_node_down_fires(server, node)
    assert node_down_alerts(server) == {node}
