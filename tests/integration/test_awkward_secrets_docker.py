"""On Docker too, secrets with a space, quotes and a backslash work: the password files, the containers'
redis.conf (read again by a restarted Redis), the subscription's connection string, the gateway's role."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import yaml

from tests.conftest import topology_dict, traversable_tmpdir
from tests.docker_helpers import DockerCluster, docker_client, ensure_test_image, unique_cluster, use_image
from tests.integration.test_awkward_secrets import SECRETS, awkward
from tests.integration.test_platform import add_user, wait_for_row

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerCluster]:
    for key in SECRETS:
        monkeypatch.setenv(f"T_{key.upper()}", awkward(key, 1))
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", replicas=1,
                                   secrets={k: f"${{T_{k.upper()}}}" for k in SECRETS}), ensure_test_image())
    path = traversable_tmpdir() / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    c = DockerCluster(path)
    try:
        yield c
    finally:
        c.destroy()


def test_awkward_secrets_on_docker(cluster: DockerCluster) -> None:
    c = cluster
    c.up()
    assert {k: c.ctx.secrets[k] for k in SECRETS} == {k: awkward(k, 1) for k in SECRETS}
    uid = add_user(c)
    assert wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator", c.topology.metadata.database)) as conn:
        assert conn.execute("SELECT 1 FROM analytics.users WHERE user_id = %s", (uid,)).fetchone()  # FDW too
    client = docker_client()
    try:  # a restarted Redis reads the password from its redis.conf again
        client.containers.get(f"{c.cluster}-redis").restart(timeout=30)
    finally:
        client.close()
    node = c.topology.node("redis")
    assert node is not None
    c.backend.readiness(node, 60).wait()
    redis = c.ctx.redis()
    assert redis.ping()
    redis.close()
