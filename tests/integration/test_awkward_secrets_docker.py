"""On Docker too, secrets with a space, quotes and a backslash work: the password files, the containers'
redis.conf (read again by a restarted Redis), the subscription's connection string, the gateway's role."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.support.docker import DockerCluster
from tests.support.platform import SECRETS, add_user, awkward, wait_for_row

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cluster(make_docker_cluster: Callable[..., DockerCluster], monkeypatch: pytest.MonkeyPatch) -> DockerCluster:
    for key in SECRETS:
        monkeypatch.setenv(f"T_{key.upper()}", awkward(key, 1))
    return make_docker_cluster(replicas=1, secrets={k: f"${{T_{k.upper()}}}" for k in SECRETS})


def test_awkward_secrets_on_docker(cluster: DockerCluster) -> None:
    c = cluster
    c.up()
    assert {k: c.ctx.secrets[k] for k in SECRETS} == {k: awkward(k, 1) for k in SECRETS}
    uid = add_user(c)
    assert wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator", c.topology.metadata.database)) as conn:
        assert conn.execute("SELECT 1 FROM analytics.users WHERE user_id = %s", (uid,)).fetchone()  # FDW too
    c.restart("redis")  # a restarted Redis reads the password from its redis.conf again
    redis = c.ctx.redis()
    assert redis.ping()
    redis.close()
