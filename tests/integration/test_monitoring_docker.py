"""The monitoring node on the Docker backend: `up` with monitoring.prometheus runs Prometheus in a container
of monitoring.image (here the locally built image with the official image's layout), on the host's network
bound to loopback, scraping `streamctl gateway` running on the host; StreamctlNodeDown fires when a replica's
container stops; an edit of alerts.yml reaches the container; `down` keeps its data volume and
`down --volumes` leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from streamctl.monitoring.container import PrometheusContainer
from streamctl.ownership import LABEL_INSTANCE
from tests.cli_helpers import streamctl
from tests.conftest import free_port, topology_dict, traversable_tmpdir
from tests.docker_helpers import (
    DockerCluster,
    cluster_resources,
    docker_client,
    ensure_prometheus_image,
    ensure_test_image,
    unique_cluster,
    use_image,
)
from tests.integration.gateway_fixtures import gateway, stop, wait_listening
from tests.monitoring_support import node_down_alerts, wait_gateway_target_up, wait_node_down_fires, wait_node_up

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cluster() -> Iterator[DockerCluster]:
    image, prometheus = ensure_test_image(), ensure_prometheus_image()
    gateway_port = free_port()
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", replicas=1, fdw=False,
                                   gateway={"port": gateway_port, "metrics_interval": 0.5},
                                   monitoring={"prometheus": True, "image": prometheus, "port": free_port(),
                                               "scrape_interval": 1, "alert_for": 0}), image)
    path = traversable_tmpdir() / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    c = DockerCluster(path)
    try:
        yield c
    finally:
        c.destroy()


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

    proc, _ = gateway(c, "127.0.0.1", "--port", str(c.topology.gateway.port))
    try:
        wait_listening(proc, f"http://127.0.0.1:{c.topology.gateway.port}/openapi.json")
        wait_gateway_target_up(server)
        wait_node_up(server, "analytics-replica-1")
        replica = c.topology.node("analytics-replica-1")
        assert replica is not None
        c.backend.stop(replica)
        wait_node_down_fires(server, "analytics-replica-1")
        assert node_down_alerts(server) == {"analytics-replica-1"}
    finally:
        stop(proc)

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
