"""On Docker, a changed password is applied to the running containers: none is recreated (PostgreSQL reads its
password file only on an empty volume, so a new container would have locked streamctl out), and a restarted
container keeps the new password (the secret files inside it are rewritten)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from streamctl.backends.base import Action
from streamctl.secrets_rotation import pending
from tests.support.cli import streamctl
from tests.support.docker import DockerCluster, docker_client
from tests.support.platform import add_user, refused, wait_for_row

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cluster(make_docker_cluster: Callable[..., DockerCluster], monkeypatch: pytest.MonkeyPatch) -> DockerCluster:
    monkeypatch.setenv("T_DOCKER_PGPW", "docker-first-superuser")
    monkeypatch.setenv("T_DOCKER_REDISPW", "docker-first-redis")
    return make_docker_cluster(replicas=1, secrets={"postgres_password": "${T_DOCKER_PGPW}",
                                                    "redis_password": "${T_DOCKER_REDISPW}"})


def container_ids(c: DockerCluster) -> dict[str, str]:
    client = docker_client()
    try:
        return {n.name: client.containers.get(f"{c.cluster}-{n.name}").id for n in c.topology.nodes()}
    finally:
        client.close()


def test_a_topology_password_change_rotates_in_place_and_survives_a_restart(cluster: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster
    c.up()
    before = container_ids(c)
    old_conninfo = c.ctx.pg_conninfo("analytics-primary")
    monkeypatch.setenv("T_DOCKER_PGPW", "docker-second-superuser")
    monkeypatch.setenv("T_DOCKER_REDISPW", "docker-second-redis")
    c.reload()
    assert {s.action for s in c.runner.plan()} == {Action.NOOP}  # a password is not a container definition
    result = c.up()
    assert {s.action for s in result.node_steps} == {Action.NOOP}
    assert container_ids(c) == before  # nothing recreated
    assert {step for _, step, _ in result.config_changes} >= {"rotate postgres_password", "rotate redis_password"}
    assert refused(old_conninfo) and not refused(c.ctx.pg_conninfo("analytics-primary"))
    assert pending(c.ctx) == []
    c.restart("redis")  # a restarted container reads its rewritten files: Redis comes back with the new password
    assert c.ctx.redis().ping()
    uid = add_user(c)
    assert wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    psql = streamctl("psql", "coordinator", "-f", str(c.path), "--", "-tAc", "SELECT count(*) FROM analytics.users")
    assert psql.returncode == 0 and psql.stdout.strip() == "1", psql.stderr


def test_rotate_secrets_on_docker_keeps_the_containers(cluster: Any) -> None:
    c = cluster
    c.up()
    before = container_ids(c)
    proc = streamctl("rotate-secrets", "replication_password", "gateway_password", "fdw_password",
                     "-f", str(c.path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert {s["status"] for s in report["secrets"]} == {"rotated"}
    assert {x["status"] for x in report["checks"]} == {"passed"}
    c.reload()
    assert container_ids(c) == before
    assert c.up().changed is False
