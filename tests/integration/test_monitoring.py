"""The monitoring node on the local backend: `up` with monitoring.prometheus starts Debian's Prometheus, which
scrapes a real gateway beyond loopback (with its token) and fires StreamctlNodeDown when a replica stops;
the alert rules are the user's file; `down` stops the server."""

from __future__ import annotations

import pytest

from streamctl.monitoring.prometheus import PrometheusServer
from tests.support.cluster import running
from tests.support.gateway import gateway_serving
from tests.support.monitoring import assert_alerts_when_a_node_stops
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.prometheus]


def test_prometheus_scrapes_the_gateway_and_alerts_when_a_replica_stops() -> None:
    port = free_port()
    with running(cluster="monitor", replicas=1,
                 gateway={"port": port, "host": "0.0.0.0", "metrics_interval": 0.5},
                 monitoring={"prometheus": True, "port": free_port(), "scrape_interval": 1, "alert_for": 0}) as c:
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

        with gateway_serving(c, "0.0.0.0", port=port):  # the topology's port: what Prometheus scrapes
            assert_alerts_when_a_node_stops(server, c, "analytics-replica-1")
            pid = server.pid()
        c.down()
        assert pid is not None and server.pid() is None
