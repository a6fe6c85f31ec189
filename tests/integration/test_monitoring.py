"""The monitoring node on the local backend: `up` with monitoring.prometheus starts Debian's Prometheus, which
scrapes a real gateway beyond loopback (with its token) and fires StreamctlNodeDown when a replica stops;
the alert rules are the user's file; `down` stops the server."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from streamctl.monitoring.prometheus import PrometheusServer
from streamctl.readiness import Readiness
from tests.conftest import free_port
from tests.integration.gateway_fixtures import destroy, start_cluster
from tests.integration.test_gateway_guard import gateway, stop, wait_listening

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.prometheus]


def api(server: PrometheusServer, path: str) -> Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success"
    return body["data"]


def test_prometheus_scrapes_the_gateway_and_alerts_when_a_replica_stops() -> None:
    port = free_port()
    c = start_cluster("monitor", replicas=1,
                      gateway={"port": port, "host": "0.0.0.0", "metrics_interval": 0.5},
                      monitoring={"prometheus": True, "port": free_port(), "scrape_interval": 1, "alert_for": 0})
    proc = None
    try:
        server = PrometheusServer(c.ctx)
        assert server.pid() is not None and server.ready()
        config = server.config_file.read_text()
        assert "credentials_file" in config and f"127.0.0.1:{port}" in config  # beyond loopback: the token
        rules = server.rules_file.read_text()
        for alert in ("StreamctlNodeDown", "StreamctlReplicationLagHigh", "StreamctlCitusSkewHigh",
                      "StreamctlWalArchivingFailing"):
            assert alert in rules
        # the rules file is the user's: a second `up` keeps an edit and finds nothing to do
        server.rules_file.write_text(rules.replace("for: 0s", "for: 0s  # edited", 1))
        c.up()
        assert "# edited" in server.rules_file.read_text()
        assert server.pending() == []

        proc, _ = gateway(c, "0.0.0.0", "--port", str(port))  # the last --port wins: the topology's port
        wait_listening(proc, f"http://127.0.0.1:{port}/openapi.json")

        def gateway_up() -> bool:
            targets = api(server, "/api/v1/targets")["activeTargets"]
            return any(t["labels"]["job"] == "streamctl-gateway" and t["health"] == "up" for t in targets)

        Readiness("Prometheus sees the gateway up", gateway_up, timeout=90, interval=0.5).wait()

        def replica_up() -> bool:  # a scrape after the gateway's first collection
            found = api(server, "/api/v1/query?query=streamctl_node_up%7Bnode%3D%22analytics-replica-1%22%7D")
            return bool(found["result"]) and found["result"][0]["value"][1] == "1"

        Readiness("Prometheus has the replica's streamctl_node_up 1", replica_up, timeout=90, interval=0.5).wait()

        replica = c.topology.node("analytics-replica-1")
        assert replica is not None
        c.backend.stop(replica)

        def firing() -> bool:
            alerts = api(server, "/api/v1/alerts")["alerts"]
            return any(a["labels"]["alertname"] == "StreamctlNodeDown" and a["state"] == "firing"
                       and a["labels"].get("node") == "analytics-replica-1" for a in alerts)

        Readiness("StreamctlNodeDown fires for the stopped replica", firing, timeout=90, interval=0.5).wait()
        alerts = api(server, "/api/v1/alerts")["alerts"]
        down = {a["labels"].get("node") for a in alerts if a["labels"]["alertname"] == "StreamctlNodeDown"}
        assert down == {"analytics-replica-1"}
        pid = server.pid()
        stop(proc)
        proc = None
        c.down()
        assert pid is not None and server.pid() is None
    finally:
        if proc is not None:
            stop(proc)
        destroy(c)
