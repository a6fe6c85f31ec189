"""The Docker backend against a real engine: names, labels, network, image contract, errors users see."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from streamctl.backends.base import Action
from streamctl.backends.docker.backend import DockerBackend
from streamctl.backends.docker.spec import LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, PGDATA
from streamctl.errors import BackendError, PreflightError, ReadinessTimeout
from streamctl.readiness import Readiness
from tests.support.docker import docker_client
from tests.support.images import ensure_test_image
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker]




@pytest.fixture
def docker() -> Iterator[Any]:
    client = docker_client()
    yield client
    client.close()


def test_containers_network_and_volumes_are_named_and_labelled(make_docker_cluster, docker) -> None:
    c = make_docker_cluster()
    c.up()
    net = docker.networks.get(f"{c.cluster}-net")
    assert net.attrs["Driver"] == "bridge"
    for node in c.topology.nodes():
        container = docker.containers.get(f"{c.cluster}-{node.name}")
        labels = container.labels
        assert (labels[LABEL_CLUSTER], labels[LABEL_NODE], labels[LABEL_ROLE]) == \
            (c.cluster, node.name, node.role.value)
        endpoint = container.attrs["NetworkSettings"]["Networks"][net.name]
        assert node.name in endpoint["Aliases"]
        mounts = {m["Name"]: m["Destination"] for m in container.attrs["Mounts"] if m["Type"] == "volume"}
        assert f"{c.cluster}-{node.name}-data" in mounts
        bindings = [b for bs in container.attrs["HostConfig"]["PortBindings"].values() for b in bs]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(node.port)}]


def test_official_image_contract(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=0, fdw=False)
    c.up()
    pg = docker.containers.get(f"{c.cluster}-coordinator")
    env = dict(e.split("=", 1) for e in pg.attrs["Config"]["Env"])
    assert env["POSTGRES_USER"] == c.topology.pg_user
    assert env["POSTGRES_DB"] == "metadata_db"
    assert env["PGDATA"] == PGDATA
    # The password travels as a file (the documented *_FILE variant), never in the environment.
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/etc/streamctl/")
    code, out = pg.exec_run(["cat", env["POSTGRES_PASSWORD_FILE"]])
    assert code == 0 and out.decode() == c.ctx.secrets["postgres_password"]
    cmd = pg.attrs["Config"]["Cmd"]
    assert cmd[0] == "postgres" and "listen_addresses=*" in cmd and "wal_level=logical" in cmd
    assert "ssl=on" in cmd
    redis = docker.containers.get(f"{c.cluster}-redis")
    rcmd = redis.attrs["Config"]["Cmd"]
    assert rcmd == ["redis-server", "/etc/streamctl/redis.conf"]
    code, out = redis.exec_run(["cat", "/etc/streamctl/redis.conf"])
    conf = out.decode().splitlines()
    assert code == 0 and "appendonly yes" in conf and "port 0" in conf and "tls-port 6379" in conf
    assert f'requirepass "{c.ctx.secrets["redis_password"]}"' in conf


def test_nodes_reach_each_other_by_name(make_docker_cluster) -> None:
    c = make_docker_cluster(replicas=1)
    c.up()
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        conninfo = conn.execute("SELECT subconninfo FROM pg_subscription").fetchone()[0]  # type: ignore[index]
    assert "host=analytics-primary" in conninfo and "port=5432" in conninfo
    user_id = uuid.uuid4()
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("INSERT INTO users (user_id, username, email) VALUES (%s, 'ada', 'ada@example.org')",
                     (user_id,))

    def replicated() -> bool:
        with c.ctx.pg_connect("analytics-replica-1") as conn:
            return conn.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,)).fetchone() is not None

    Readiness("row replicated to analytics-replica-1", replicated, timeout=60).wait()
    with c.ctx.pg_connect("coordinator") as conn:  # FDW server points at the primary by its name
        options = conn.execute("SELECT srvoptions FROM pg_foreign_server").fetchone()[0]  # type: ignore[index]
        assert "host=analytics-primary" in options
        assert conn.execute("SELECT username FROM analytics.users").fetchone() == ("ada",)


def test_source_address_is_the_container_ip_on_the_cluster_network(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    c.up()
    node = c.topology.node("coordinator")
    ip = c.backend.source_address(node)
    container = docker.containers.get(f"{c.cluster}-coordinator")
    assert ip == container.attrs["NetworkSettings"]["Networks"][f"{c.cluster}-net"]["IPAddress"]


def test_write_pg_file_is_owned_by_postgres(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    c.up()
    node = c.topology.node("coordinator")
    container = docker.containers.get(f"{c.cluster}-coordinator")

    def stat(path: str) -> str:
        code, out = container.exec_run(["stat", "-c", "%U %a", path])
        assert code == 0, out
        return out.decode().strip()

    # pg_hba.conf, the file `up` rewrites: replaced in place, so it keeps its owner and its 0600.
    with c.ctx.pg_connect(node.name) as conn:
        current = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()[0]
    c.backend.write_pg_file(node, "pg_hba.conf", current + "# probe\n")
    assert stat(f"{PGDATA}/pg_hba.conf") == "postgres 600"
    code, out = container.exec_run(["tail", "-n", "1", f"{PGDATA}/pg_hba.conf"])
    assert out.decode() == "# probe\n"
    # A new file is the server's own too, inside the data directory only its owner may enter.
    c.backend.write_pg_file(node, "probe.conf", "x = 1\n")
    assert stat(f"{PGDATA}/probe.conf").split()[0] == "postgres"
    assert stat(PGDATA) == "postgres 700"
    # COPY's text format would turn a tab or a backslash into an escape: refused, the file left as it was.
    with pytest.raises(BackendError, match="tabs and backslashes"):
        c.backend.write_pg_file(node, "probe.conf", "x =\t2\n")
    assert container.exec_run(["cat", f"{PGDATA}/probe.conf"])[1].decode() == "x = 1\n"


def test_unreachable_engine_is_a_preflight_error_with_a_hint(make_docker_cluster, monkeypatch) -> None:
    c = make_docker_cluster(replicas=0, fdw=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/streamctl-test.sock")
    backend = DockerBackend(c.ctx)
    with pytest.raises(PreflightError) as err:
        backend.preflight(c.topology.nodes())
    assert "Docker engine" in err.value.message
    assert "--backend local" in (err.value.hint or "")


def test_failed_pull_names_the_image(make_docker_cluster) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    # A registry address on loopback that nothing serves: the pull fails here, no traffic leaves the machine.
    missing = f"127.0.0.1:1/streamctl-test/never-built-{uuid.uuid4().hex[:8]}:none"
    node = replace(c.topology.node("coordinator"), image=missing)  # type: ignore[type-var]
    seen: list[str] = []
    c.ctx.store.secrets(c.topology, create=True)
    backend = DockerBackend(c.ctx, progress=lambda _node, msg: seen.append(msg))
    with pytest.raises(BackendError) as err:
        backend.apply(node, Action.CREATE)
    assert missing in err.value.message and "pull" in err.value.message
    assert seen and missing in seen[0]


def test_foreign_container_with_our_name_is_refused(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    foreign = docker.containers.create(ensure_test_image(), ["true"], name=f"{c.cluster}-coordinator")
    try:
        with pytest.raises(PreflightError) as err:
            c.backend.preflight(c.topology.nodes())
        assert "not created by streamctl" in err.value.message
    finally:
        foreign.remove(force=True)  # it carries no cluster label, so the label sweep would miss it


def test_readiness_failure_shows_the_container_log(make_docker_cluster) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    c.ctx.store.secrets(c.topology, create=True)
    node = replace(c.topology.node("coordinator"),  # type: ignore[type-var]
                   settings=(("no_such_setting_for_streamctl", "1"),))
    c.backend.apply(node, Action.CREATE)
    with pytest.raises(ReadinessTimeout) as err:
        c.backend.readiness(node, timeout=60).wait()
    assert "stopped while starting" in err.value.message
    assert any("no_such_setting_for_streamctl" in line for line in err.value.details)


def test_postgres_nodes_start_from_one_initialised_template_volume(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=1, fdw=False, redis=False)
    c.up()
    templates = docker.volumes.list(filters={"label": [f"io.streamctl.cluster={c.cluster}",
                                                       "io.streamctl.template"]})
    assert len(templates) == 1  # one image in this topology: one template, made once
    for node in ("coordinator", "analytics-primary", "analytics-replica-1"):
        log = docker.containers.get(f"{c.cluster}-{node}").logs().decode()
        assert "init process complete" not in log  # the entrypoint skipped initdb: the volume was populated
    for node, db in (("coordinator", "metadata_db"), ("analytics-replica-1", "analytics_db")):
        with c.ctx.pg_connect(node, db) as conn:  # the node's own database and password work
            assert conn.execute("SELECT current_database()").fetchone() == (db,)
            # the template's empty spare, renamed: nothing else is left over
            datnames = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")}
            assert datnames == {"postgres", db}
    c.down(volumes=True)
    assert not docker.volumes.list(filters={"label": f"io.streamctl.cluster={c.cluster}"})


def test_template_clones_through_a_helper_container_when_the_host_cannot_reach_the_volumes(
        make_docker_cluster, docker, monkeypatch) -> None:
    from streamctl.backends.docker import volume_copy as docker_volume_copy

    # As for an engine on another host (or a user who may not read its volume directories).
    monkeypatch.setattr(docker_volume_copy, "local_mountpoint", lambda _api, _volume: None)
    c = make_docker_cluster(replicas=1, fdw=False, redis=False)
    c.up()
    for node in ("coordinator", "analytics-primary", "analytics-replica-1"):
        assert "init process complete" not in docker.containers.get(f"{c.cluster}-{node}").logs().decode()
    with c.ctx.pg_connect("analytics-replica-1", "analytics_db") as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("analytics_db",)
    helpers = docker.containers.list(all=True, filters={"label": f"io.streamctl.template={c.cluster}"})
    assert helpers == []  # every helper container removed


def test_a_later_up_reuses_the_template_an_earlier_one_made(make_docker_cluster, docker) -> None:
    c = make_docker_cluster(replicas=1, fdw=False, redis=False)
    c.up()
    label = {"label": [f"io.streamctl.cluster={c.cluster}", "io.streamctl.template"]}
    (template,) = docker.volumes.list(filters=label)
    created = template.attrs["CreatedAt"]
    c.edit(lambda d: d["analytics"]["replicas"].append({"name": "analytics-replica-2", "port": free_port()}))
    c.up()  # a new backend object: it knows the template only by its marker in the volume
    (again,) = docker.volumes.list(filters=label)
    assert (again.name, again.attrs["CreatedAt"]) == (template.name, created)
    assert "init process complete" not in docker.containers.get(f"{c.cluster}-analytics-replica-2").logs().decode()
    with c.ctx.pg_connect("analytics-replica-2", "analytics_db") as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("analytics_db",)
