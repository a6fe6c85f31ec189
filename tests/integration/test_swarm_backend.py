"""The Swarm backend on a real single-node Swarm (the test engine, `swarm init --advertise-addr 127.0.0.1`
for the session and left again unless it already was a member), driven through the CLI.

examples/no-citus.yaml with the locally built test image, free ports, a unique cluster name and
`bind: 0.0.0.0` (Swarm publishes on every interface; the topology has to say so).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.errors import ExitCode
from tests.support.cli import Cli
from tests.support.cluster import traversable_tmpdir
from tests.support.docker import cli_for, cluster_resources, docker_client, example_topology
from tests.support.images import ensure_test_image
from tests.support.ports import free_port
from tests.support.swarm import SwarmSession, swarm_resources, swarm_session, swarm_state

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def swarm() -> Iterator[SwarmSession]:
    ensure_test_image()
    yield from swarm_session()


def _topology() -> dict[str, Any]:
    return example_topology(backend="local", bind="0.0.0.0")


@pytest.fixture
def cli(swarm: SwarmSession) -> Iterator[Cli]:
    with cli_for(_topology(), backend="swarm") as c:
        yield c


def _task_container(cluster: str, node: str) -> Any:
    client = docker_client()
    found = client.containers.list(filters={"label": f"com.docker.swarm.service.name={cluster}-{node}"})
    assert len(found) == 1, found
    return found[0]


def _secret_refs(service: Any) -> list[dict[str, Any]]:
    return list(service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or [])


def assert_tls_on_swarm(cli: Cli, secrets: dict[str, str]) -> None:
    """Certificates and keys arrive as Swarm secrets (key 0600, the server's own), never in a service's spec;
    plain text is refused; clients verify the servers by the cluster CA and the names they reach them by."""
    import psycopg
    import redis

    state = cli.path.parent / ".streamctl" / cli.cluster
    ca = str(state / "tls" / "ca.crt")
    keys = [p.read_text() for p in (state / "tls" / "nodes").glob("*.key")]
    assert len(keys) == 4
    client = docker_client()
    for service in client.services.list(filters={"label": f"io.streamctl.cluster={cli.cluster}"}):
        blob = json.dumps(service.attrs["Spec"])
        assert "PRIVATE KEY" not in blob and not any(k in blob for k in keys), service.name
        files = {r["File"]["Name"]: r for r in _secret_refs(service)}
        assert {"ca.crt", "server.crt", "server.key"} <= set(files), service.name
        assert files["server.key"]["File"]["Mode"] == 0o600
    for node, user in (("coordinator", "postgres"), ("redis", "redis")):
        code, out = _task_container(cli.cluster, node).exec_run(
            ["stat", "-c", "%a %U", "/run/secrets/server.key"])
        assert code == 0 and out.decode().split() == ["600", user], out
    pw = secrets["postgres_password"]
    for node in ("coordinator", "analytics-primary", "analytics-replica-1"):
        port = cli.data["analytics"]["primary"]["port"] if node == "analytics-primary" else None
        port = port or (cli.data["metadata"]["coordinator"]["port"] if node == "coordinator"
                        else cli.data["analytics"]["replicas"][0]["port"])
        params = {"host": "127.0.0.1", "port": port, "user": cli.data.get("pg_user", "streamctl"),
                  "dbname": "postgres", "password": pw, "connect_timeout": 5}
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(**params, sslmode="disable")
        with psycopg.connect(**params, sslmode="verify-full", sslrootcert=ca) as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    rport = cli.data["redis"]["port"]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=rport, password=secrets["redis_password"], socket_timeout=3).ping()
    assert redis.Redis(host="127.0.0.1", port=rport, password=secrets["redis_password"], socket_timeout=3,
                       ssl=True, ssl_ca_certs=ca, ssl_cert_reqs="required").ping()
    # Replication between services verifies the primary by its service name, over TLS.
    assert cli.sql("analytics-primary", "SELECT bool_and(s.ssl) FROM pg_stat_replication r "
                                        "JOIN pg_stat_ssl s USING (pid)") == "t"


def test_engine_not_in_a_swarm() -> None:
    """First in the file, so it runs before the module's Swarm exists: `up` on a plain engine is refused."""
    ensure_test_image()
    if swarm_state() != "inactive":
        pytest.skip("the engine was already a Swarm member when the tests started (`docker swarm leave` to run this)")
    with cli_for(_topology(), backend="swarm") as c:
        for command in (("up",), ("up", "--dry-run"), ("status",)):
            proc = c.run(*command)
            assert proc.returncode == ExitCode.PREFLIGHT, proc.stdout + proc.stderr
            assert "is not part of a Swarm" in proc.stderr and "docker swarm init" in proc.stderr, proc.stderr
        assert swarm_state() == "inactive"
        assert cluster_resources(c.cluster) == {"containers": [], "volumes": [], "networks": []}


def test_lifecycle_on_a_single_node_swarm(cli: Cli, swarm: SwarmSession) -> None:
    first = cli.json("up")
    assert first["changed"] and {n["action"] for n in first["nodes"]} == {"create"}
    res = swarm_resources(cli.cluster)
    assert res["services"] == sorted(f"{cli.cluster}-{n}" for n in
                                     ("coordinator", "analytics-primary", "analytics-replica-1", "redis"))
    assert res["networks"] == [f"{cli.cluster}-overlay"]

    # Passwords are Docker secrets only: never in a service's environment or arguments.
    secrets = json.loads((cli.path.parent / ".streamctl" / cli.cluster / "secrets.json").read_text())
    client = docker_client()
    for service in client.services.list(filters={"label": f"io.streamctl.cluster={cli.cluster}"}):
        blob = json.dumps(service.attrs["Spec"])
        assert not any(value in blob for value in secrets.values()), service.name
        assert service.attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
        constraints = service.attrs["Spec"]["TaskTemplate"]["Placement"]["Constraints"]
        assert f"node.id == {swarm.node_id}" in constraints  # pinned where its volume is

    assert_tls_on_swarm(cli, secrets)

    cli.ok("seed", "--scale", "0.01")
    verify = cli.run("verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    checks = {(r["check"], r.get("target")): r["status"] for r in json.loads(verify.stdout)["checks"]}
    required = {target for (check, target), status in checks.items() if check == "tls.required"}
    assert required == {"coordinator", "analytics-primary", "analytics-replica-1", "redis"}, checks
    assert all(status == "passed" for (check, _), status in checks.items() if check.startswith("tls.")), checks
    users = cli.sql("analytics-replica-1", "SELECT count(*) FROM users")
    assert int(users) > 0

    again = cli.json("up")
    assert not again["changed"] and {n["action"] for n in again["nodes"]} == {"noop"}

    # A certificate that must be reissued (here: gone from the state) is a new secret and a service update.
    tls_dir = cli.path.parent / ".streamctl" / cli.cluster / "tls" / "nodes"
    service = client.services.get(f"{cli.cluster}-coordinator")
    before = {r["File"]["Name"]: r["SecretName"] for r in _secret_refs(service)}
    (tls_dir / "coordinator.crt").unlink()
    renewed = cli.json("up")
    assert {n["name"]: n["action"] for n in renewed["nodes"]}["coordinator"] == "recreate"
    service.reload()
    after = {r["File"]["Name"]: r["SecretName"] for r in _secret_refs(service)}
    assert after["server.crt"] != before["server.crt"] and after["server.key"] != before["server.key"]
    assert after["ca.crt"] == before["ca.crt"]
    assert cli.sql("coordinator", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t"
    assert not cli.json("up")["changed"]

    rows = json.loads(cli.ok("status", "--json").stdout)["nodes"]
    assert all(r["state"] == "running" and r["healthy"] for r in rows)
    assert all(swarm.node_id[:12] in r["detail"] for r in rows)  # the Swarm host each service runs on

    # A killed task is replaced by Swarm, on the same host, with its data.
    old = _task_container(cli.cluster, "analytics-primary")
    old.kill()
    cli.ok("up")  # waits until the replacement answers (pg_hba admits the overlay subnet: no rewrite needed)
    assert _task_container(cli.cluster, "analytics-primary").id != old.id
    assert cli.sql("analytics-primary", "SELECT count(*) FROM users") == users

    cli.ok("down")
    assert all(r["state"] == "stopped" for r in json.loads(cli.run("status", "--json").stdout)["nodes"])
    cli.ok("up")
    assert cli.sql("analytics-replica-1", "SELECT count(*) FROM users") == users

    cli.ok("down", "--volumes", "--yes")
    assert swarm_resources(cli.cluster) == {"services": [], "secrets": [], "networks": [], "volumes": []}


def test_unsatisfiable_constraint_creates_nothing(cli: Cli) -> None:
    cli.data["placement"] = {"roles": {"analytics_replica": ["node.labels.streamctl-test-absent == yes"]}}
    cli.save()
    for command in (("up",), ("up", "--dry-run")):
        proc = cli.run(*command)
        assert proc.returncode == ExitCode.PREFLIGHT, proc.stderr
        assert "placement cannot be satisfied" in proc.stderr
        assert "analytics-replica-1" in proc.stderr and "node.labels.streamctl-test-absent == yes" in proc.stderr
    assert swarm_resources(cli.cluster) == {"services": [], "secrets": [], "networks": [], "volumes": []}


def test_bad_constraint_syntax_is_a_topology_error(cli: Cli) -> None:
    cli.data["placement"] = {"nodes": {"coordinator": ["node.hostname = db-1"]}}
    cli.save()
    proc = cli.run("up")
    assert proc.returncode == ExitCode.CONFIG, proc.stderr
    assert "placement.nodes.coordinator[0]" in proc.stderr
    assert swarm_resources(cli.cluster)["services"] == []


def test_loopback_bind_is_refused_on_swarm(cli: Cli) -> None:
    cli.data["bind"] = "127.0.0.1"
    cli.save()
    proc = cli.run("up")
    # `--backend swarm` is applied before validation: the topology is judged as it will run (exit 3)
    assert proc.returncode == ExitCode.CONFIG and "bind: 0.0.0.0" in proc.stderr, proc.stderr
    assert swarm_resources(cli.cluster)["services"] == []


def test_unreachable_manager(cli: Cli) -> None:
    proc = cli.run("up", env={"DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"})
    assert proc.returncode == ExitCode.PREFLIGHT and "cannot reach the Docker engine" in proc.stderr
    assert swarm_resources(cli.cluster)["services"] == []


def test_pinned_host_gone_changes_nothing(cli: Cli) -> None:
    cli.data["analytics"] = {**cli.data["analytics"], "replicas": []}
    cli.data["fdw"]["enabled"] = False
    cli.data["analytics"]["enabled"] = False
    cli.save()
    cli.ok("up")
    state_file = cli.path.parent / ".streamctl" / cli.cluster / "state.json"
    state = json.loads(state_file.read_text())
    real = state["swarm_pins"]["coordinator"]
    # The coordinator's host leaves: its pin names a Swarm node that no longer exists.
    state["swarm_pins"]["coordinator"] = {"id": "x" * 25, "hostname": "db-gone", "addr": "10.9.9.9"}
    state_file.write_text(json.dumps(state))
    client = docker_client()
    service = client.services.get(f"{cli.cluster}-coordinator")
    before = service.attrs["Version"]["Index"]

    proc = cli.run("up")
    assert proc.returncode == ExitCode.UNREACHABLE, proc.stderr  # the rest converged, the pinned one left
    assert "coordinator is pinned to db-gone" in proc.stderr and "left the swarm" in proc.stderr
    status = cli.run("status", "--json").stdout
    assert "db-gone" in status and "left the swarm" in status
    service.reload()
    assert service.attrs["Version"]["Index"] == before  # nothing changed
    state["swarm_pins"]["coordinator"] = real
    state_file.write_text(json.dumps(state))


def test_tls_false_keeps_swarm_nodes_plain(cli: Cli) -> None:
    """`tls: false`: no certificate secrets, plain connections accepted, verify's TLS checks skipped."""
    import psycopg
    import redis

    cli.data["analytics"] = {**cli.data["analytics"], "replicas": [], "enabled": False}
    cli.data["fdw"]["enabled"] = False
    cli.data["tls"] = False
    cli.save()
    cli.ok("up")
    client = docker_client()
    for service in client.services.list(filters={"label": f"io.streamctl.cluster={cli.cluster}"}):
        assert not {"ca.crt", "server.crt", "server.key"} & {r["File"]["Name"] for r in _secret_refs(service)}
    secrets = json.loads((cli.path.parent / ".streamctl" / cli.cluster / "secrets.json").read_text())
    with psycopg.connect(host="127.0.0.1", port=cli.data["metadata"]["coordinator"]["port"], user="streamctl",
                         dbname="postgres", password=secrets["postgres_password"], sslmode="disable") as conn:
        assert conn.execute("SELECT current_setting('ssl')").fetchone() == ("off",)
    assert redis.Redis(host="127.0.0.1", port=cli.data["redis"]["port"], password=secrets["redis_password"],
                       socket_timeout=3).ping()
    checks = json.loads(cli.run("verify", "--json", "--only", "tls").stdout)["checks"]
    assert checks and all(c["status"] == "skipped" for c in checks), checks


def test_a_second_state_dir_cannot_touch_the_swarm_cluster_until_it_adopts(cli: Cli) -> None:
    """Services, volumes, secrets and the network carry the instance id; another state directory's `up` and
    `down --volumes` are refused (exit 13) and change nothing; `up --adopt` with the owner's secrets updates
    the services in place (data kept), after which the first state directory is the one refused."""
    cli.data["analytics"].update(enabled=False)
    cli.data["fdw"]["enabled"] = False
    cli.save()
    cli.ok("up")
    cli.ok("psql", "coordinator", "--", "-c", "CREATE TABLE owned AS SELECT generate_series(1, 300) AS id")
    mine = cli.path.parent / ".streamctl" / cli.cluster
    owner = json.loads((mine / "state.json").read_text())["instance_id"]
    client = docker_client()
    flt = {"label": f"io.streamctl.cluster={cli.cluster}"}
    labelled = [*(s.attrs["Spec"]["Labels"] for s in client.services.list(filters=flt)),
                *(v.attrs["Labels"] for v in client.volumes.list(filters=flt)),
                *(n.attrs["Labels"] for n in client.networks.list(filters=flt)),
                *(s.attrs["Spec"]["Labels"] for s in client.secrets.list(filters=flt))]
    assert len(labelled) >= 6 and {lab.get("io.streamctl.instance") for lab in labelled} == {owner}

    other = traversable_tmpdir()
    try:
        for args in (("up",), ("down", "--volumes", "--yes"), ("up", "--adopt")):
            proc = cli.run(*args, "--state-dir", str(other))
            text = " ".join((proc.stdout + proc.stderr).split())
            assert proc.returncode == 13, text
            assert ("needs the owner's secrets" in text if "--adopt" in args else
                    owner in text and str(mine) in text), text
        assert cli.sql("coordinator", "SELECT count(*) FROM owned") == "300"

        (other / cli.cluster).mkdir(parents=True, exist_ok=True)
        shutil.copy(mine / "secrets.json", other / cli.cluster / "secrets.json")
        cli.ok("up", "--adopt", "--state-dir", str(other))
        adopter = json.loads((other / cli.cluster / "state.json").read_text())["instance_id"]
        assert {s.attrs["Spec"]["Labels"].get("io.streamctl.instance")
                for s in client.services.list(filters=flt)} == {adopter}
        count = cli.ok("psql", "coordinator", "--state-dir", str(other), "--", "-At", "-c",
                       "SELECT count(*) FROM owned").stdout.strip()
        assert count == "300"
        proc = cli.run("down", "--volumes", "--yes")
        assert proc.returncode == 13 and adopter in " ".join(proc.stderr.split()), proc.stdout + proc.stderr
        cli.ok("down", "--volumes", "--yes", "--state-dir", str(other))
        assert swarm_resources(cli.cluster) == {"services": [], "secrets": [], "networks": [], "volumes": []}
    finally:
        shutil.rmtree(other, ignore_errors=True)
        client.close()
