"""The monitoring node on the local backend: `up` with monitoring.prometheus starts Debian's Prometheus, which
scrapes a real gateway beyond loopback (with its token) and fires StreamctlNodeDown when a replica stops;
the alert rules are the user's file; `down` stops the server."""

from __future__ import annotations

import pytest

from streamctl.monitoring.prometheus import PrometheusServer
from tests.conftest import free_port
from tests.integration.gateway_fixtures import destroy, gateway, start_cluster, stop, wait_listening
from tests.monitoring_support import node_down_alerts, wait_gateway_target_up, wait_node_down_fires, wait_node_up

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.prometheus]


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

        wait_gateway_target_up(server)
        wait_node_up(server, "analytics-replica-1")
        replica = c.topology.node("analytics-replica-1")
        assert replica is not None
        c.backend.stop(replica)
        wait_node_down_fires(server, "analytics-replica-1")
        assert node_down_alerts(server) == {"analytics-replica-1"}
        pid = server.pid()
        stop(proc)
        proc = None
        c.down()
        assert pid is not None and server.pid() is None
    finally:
        if proc is not None:
            stop(proc)
        destroy(c)
