"""The monitoring node on the Docker backend: `up` with monitoring.prometheus runs Prometheus in a container
of monitoring.image (here the locally built image with the official image's layout), on the host's network
bound to loopback, scraping `streamctl gateway` running on the host; StreamctlNodeDown fires when a replica's
container stops; an edit of alerts.yml reaches the container; `down` keeps its data volume and
`down --volumes` leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamctl.monitoring.container import PrometheusContainer
from streamctl.ownership import LABEL_INSTANCE
from tests.support.cli import streamctl
from tests.support.docker import DockerCluster, cluster_resources, docker_client
from tests.support.gateway import gateway_serving
from tests.support.images import ensure_prometheus_image
from tests.support.monitoring import assert_alerts_when_a_node_stops
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cluster(make_docker_cluster: Callable[..., DockerCluster]) -> DockerCluster:
    return make_docker_cluster(replicas=1, fdw=False, gateway={"port": free_port(), "metrics_interval": 0.5},
                               monitoring={"prometheus": True, "image": ensure_prometheus_image(), "port": free_port(),
                                           "scrape_interval": 1, "alert_for": 0})


def test_prometheus_container_scrapes_the_host_gateway_and_alerts_when_a_replica_stops(
        cluster: DockerCluster) -> None:
    c = cluster
    c.up()
    server = PrometheusContainer(c.ctx, docker_client())
    container = server.find()
    assert container is not None and container.status == "running"
    labels = container.labels
    assert labels[LABEL_INSTANCE] == c.ctx.ownership.instance and labels["io.streamctl.cluster"] == c.cluster
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert f"--web.listen-address=127.0.0.1:{c.topology.monitoring.port}" in container.attrs["Args"]
    assert server.ready()
    # the configuration names the container's copies; the gateway is on loopback: no token to send
    config = server.config_file.read_text()
    assert "rule_files:\n  - /etc/prometheus/alerts.yml" in config and "credentials_file" not in config
    assert f"127.0.0.1:{c.topology.gateway.port}" in config

    # alerts.yml stays the user's: an edit reaches the container on the next `up`, which then has nothing to do
    rules = server.rules_file.read_text()
    server.rules_file.write_text(rules.replace("for: 0s", "for: 0s  # edited", 1))
    assert server.pending() == ["copy the configuration into " + server.name + " and reload"]
    c.up()
    assert server.pending() == []
    assert "# edited" in server._copied(server.find())["alerts.yml"].decode()

    with gateway_serving(c, "127.0.0.1", port=c.topology.gateway.port):
        assert_alerts_when_a_node_stops(server, c, "analytics-replica-1")

    # `down` stops it with the nodes and keeps its data; `down --volumes` removes the container and the volume
    c.down()
    assert server.find() is None or server.find().status != "running"
    assert f"{c.cluster}-prometheus-data" in cluster_resources(c.cluster)["volumes"]
    state = c.ctx.store.root
    result = streamctl("down", "-f", str(c.path), "--volumes", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    left = cluster_resources(c.cluster)
    assert left == {"containers": [], "volumes": [], "networks": []}, left
    assert not state.exists()
