"""Verified TLS on real engines: plain text refused, another CA refused, every platform connection over TLS,
keys 0600, a changed certificate setting converging, and no password in `docker inspect` or `ps`."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml

from streamctl.readiness import Readiness
from streamctl.tls import certs
from tests.support.docker import docker_client
from tests.support.gateway import gateway_serving
from tests.support.platform import add_user, wait_for_row


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pg_params(c: Any, node: str) -> dict[str, Any]:
    ep = c.ctx.endpoint(node)
    return {"host": ep.host, "port": ep.port, "user": c.topology.pg_user, "dbname": "postgres",
            "password": c.ctx.secrets["postgres_password"], "connect_timeout": 5}


def _other_ca(directory: Path) -> Path:
    path = directory / "other-ca.crt"
    path.write_bytes(certs.new_ca("someone-else").cert)
    return path


def assert_plain_and_foreign_ca_refused(c: Any) -> None:
    """Every PostgreSQL node and Redis: a plain-text client is refused, a client trusting another CA fails."""
    other = _other_ca(c.path.parent)
    pg_nodes = [n.name for n in c.topology.nodes() if n.is_postgres]
    for name in pg_nodes:
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(**_pg_params(c, name), sslmode="disable")
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(**_pg_params(c, name), sslmode="verify-full", sslrootcert=str(other))
        with psycopg.connect(**_pg_params(c, name), sslmode="verify-full",
                             sslrootcert=c.ctx.ca_path()) as conn:  # the cluster CA: verified and encrypted
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    ep = c.ctx.endpoint(c.topology.redis.name)
    password = c.ctx.secrets["redis_password"]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=ep.host, port=ep.port, password=password, socket_timeout=3).ping()
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis(host=ep.host, port=ep.port, password=password, socket_timeout=3, ssl=True,
                    ssl_ca_certs=str(other), ssl_cert_reqs="required").ping()
    assert c.ctx.redis().ping()


def assert_platform_traffic_is_tls(c: Any) -> None:
    """Replication and the FDW run, and the servers see their connections encrypted."""
    uid = add_user(c)
    wait_for_row(c, "analytics-replica-1", "SELECT 1 FROM users WHERE user_id = %s", (uid,))
    with c.ctx.pg_connect("analytics-primary") as conn:
        walsenders = conn.execute("SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)").fetchall()
    assert walsenders and all(row[0] for row in walsenders)
    with c.ctx.pg_connect("coordinator") as coord:
        assert coord.execute("SELECT count(*) FROM analytics.users WHERE user_id = %s", (uid,)).fetchone() == (1,)
        with c.ctx.pg_connect("analytics-primary") as source:  # the FDW's cached connection is still open
            fdw = source.execute("SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                                 "WHERE a.usename = 'streamctl_fdw_reader'").fetchall()
    assert fdw and all(row[0] for row in fdw)


# -- local backend ------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_local_cluster_is_verified_tls_everywhere(make_cluster) -> None:
    c = make_cluster(cluster="tls")
    c.up()
    assert_plain_and_foreign_ca_refused(c)
    assert_platform_traffic_is_tls(c)
    tls_dir = c.ctx.store.root / "tls"
    keys = [tls_dir / "ca.key", *(tls_dir / "nodes").glob("*.key"),
            *(c.ctx.store.root / "nodes").glob("*/tls/server.key")]
    assert len(keys) == 1 + 2 * len(c.topology.nodes())
    assert all(_mode(k) == 0o600 for k in keys), {str(k): oct(_mode(k)) for k in keys}
    url = c.ctx.pg_uri("coordinator")
    assert "sslmode=verify-full" in url and f"sslrootcert={c.ctx.ca_path()}" in url
    with psycopg.connect(url) as conn:  # what `streamctl url` prints works as it is
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_changed_certificate_setting_converges_with_the_next_up(make_cluster) -> None:
    c = make_cluster(cluster="tlsca", replicas=1)
    c.up()
    first_ca = Path(c.ctx.ca_path()).read_bytes()
    own = certs.new_ca("ours")
    (c.path.parent / "ca.pem").write_bytes(own.cert)
    (c.path.parent / "ca.key").write_bytes(own.key)
    data = yaml.safe_load(c.path.read_text())
    data["tls"] = {"ca_cert": "ca.pem", "ca_key": "ca.key"}
    c.path.write_text(yaml.safe_dump(data))
    c.reload()
    planned = {s.node.name: s.action.value for s in c.runner.plan()}
    assert set(planned.values()) == {"recreate"}, planned
    c.up()
    assert Path(c.ctx.ca_path()).read_bytes() == own.cert != first_ca
    for node in [n for n in c.topology.nodes() if n.is_postgres]:
        with psycopg.connect(**_pg_params(c, node.name), sslmode="verify-full",
                             sslrootcert=str(c.path.parent / "ca.pem")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert_platform_traffic_is_tls(c)  # the replica and the FDW now verify against the new CA
    assert not c.up().changed


@pytest.mark.postgres
@pytest.mark.redis
def test_tls_false_keeps_plain_connections(make_cluster) -> None:
    c = make_cluster(cluster="plain", replicas=0, fdw=False, tls=False)
    c.up()
    with psycopg.connect(**_pg_params(c, "coordinator"), sslmode="disable") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert c.ctx.redis_url().startswith("redis://") and c.ctx.redis().ping()
    assert not (c.ctx.store.root / "tls").exists()


@pytest.mark.citus
def test_citus_nodes_verify_each_other(make_cluster) -> None:
    c = make_cluster(cluster="tlscitus", citus=True, workers=2, analytics=False, redis=False)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        conninfo = conn.execute("SHOW citus.node_conninfo").fetchone()[0]  # type: ignore[index]
        assert "sslmode=verify-full" in conninfo and "sslrootcert=" in conninfo
        conn.execute("INSERT INTO genres (genre_id, name) VALUES (9001, 'tls-test') ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT count(*) FROM content_metadata").fetchone() == (0,)  # every shard, on workers
    for worker in ("worker-1", "worker-2"):
        with c.ctx.pg_connect(worker) as conn:
            rows = conn.execute("SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                                "WHERE a.application_name LIKE 'citus%'").fetchall()
            assert conn.execute("SELECT count(*) FROM genres WHERE genre_id = 9001").fetchone() == (1,)
        assert rows and all(r[0] for r in rows), (worker, rows)
    assert_plain_and_foreign_ca_refused_pg_only(c)


def assert_plain_and_foreign_ca_refused_pg_only(c: Any) -> None:
    other = _other_ca(c.path.parent)
    for node in c.topology.nodes():
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(**_pg_params(c, node.name), sslmode="disable")
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(**_pg_params(c, node.name), sslmode="verify-full", sslrootcert=str(other))


# -- Docker backend -----------------------------------------------------------------------------------


@pytest.mark.docker
def test_docker_cluster_is_verified_tls_and_shows_no_password(make_docker_cluster) -> None:
    c = make_docker_cluster()
    c.up()
    assert_plain_and_foreign_ca_refused(c)
    assert_platform_traffic_is_tls(c)
    secrets = [v for v in c.ctx.secrets.values() if v]
    client = docker_client()
    try:
        containers = {n.name: client.containers.get(f"{c.cluster}-{n.name}") for n in c.topology.nodes()}
        for name, container in containers.items():
            inspected = json.dumps(client.api.inspect_container(container.id))
            assert not [s for s in secrets if s in inspected], f"a password is in `docker inspect` of {name}"
            # What `ps` shows: every process's command line (the minimal image has no procps).
            code, out = container.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
            assert code == 0 and out
            assert not [s for s in secrets if s in out.decode(errors="replace")], f"a password in ps of {name}"
            code, out = container.exec_run(["sh", "-c", "stat -c '%a %U %n' /etc/streamctl/tls/server.key "
                                            "/etc/streamctl/*password* /etc/streamctl/*.conf 2>/dev/null"])
            modes = out.decode().split()
            assert modes and all(m == "600" for m in modes[0::3]), (name, out)

        def healthy() -> bool:  # Docker's own healthchecks pass (Redis's reads its password from a file)
            return all(client.api.inspect_container(ct.id)["State"].get("Health", {}).get("Status") == "healthy"
                       for ct in containers.values())

        Readiness("docker healthchecks", healthy, timeout=60, interval=1).wait()
    finally:
        client.close()
    assert not c.up().changed


@pytest.mark.postgres
@pytest.mark.redis
def test_verify_proves_tls_is_required_and_finds_a_node_that_is_not(make_cluster) -> None:
    from streamctl.services.postgres import render_hba
    from streamctl.verify.runner import run_checks

    c = make_cluster(cluster="tlsverify", replicas=0, fdw=False)
    c.up()
    report = run_checks(c.ctx, ["tls"])
    statuses = {(r.check, r.target): r.status.value for r in report.results}
    assert set(statuses.values()) == {"passed"}, statuses
    assert ("tls.required", "redis") in statuses and ("tls.expiry", "ca") in statuses
    # A node whose pg_hba admits plain text again is caught.
    node = c.topology.node("analytics-primary")
    c.backend.write_pg_file(node, "pg_hba.conf", render_hba(c.topology.pg_user, [], tls=False))
    with c.ctx.pg_connect(node.name) as conn:
        conn.execute("SELECT pg_reload_conf()")
    report = run_checks(c.ctx, ["tls.required"])
    bad = {r.target: r.detail for r in report.results if r.status.value != "passed"}
    assert list(bad) == ["analytics-primary"] and "plain-text" in bad["analytics-primary"]
    c.up()  # converges back
    assert all(r.status.value == "passed" for r in run_checks(c.ctx, ["tls.required"]).results)


# -- the gateway ----------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_gateway_beyond_loopback_needs_the_ops_token_and_serves_verified_tls(make_cluster) -> None:
    import ssl

    import httpx

    c = make_cluster(cluster="tlsgw", replicas=1)
    c.up()
    ca = ssl.create_default_context(cafile=c.ctx.ca_path())
    with gateway_serving(c, "127.0.0.2", "--tls", verify=ca) as base:
        token_file = c.ctx.store.root / "gateway-token"
        assert _mode(token_file) == 0o600
        token = token_file.read_text().strip()
        with httpx.Client(base_url=base, verify=ca, timeout=10) as client:
            for path in ("/health", "/api/v1/ops/replication", "/"):
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
                assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, path
            assert client.get("/api/v1/content/ids").status_code == 401  # no gateway.public_routes: all guarded
            login = client.get(f"/?token={token}")
            assert login.status_code == 200 and "HttpOnly" in login.headers["set-cookie"]
            assert client.get("/health").status_code == 200  # the dashboard's own requests carry the cookie
        other = _other_ca(c.path.parent)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/v1/content/ids", verify=ssl.create_default_context(cafile=str(other)))
    with gateway_serving(c, "127.0.0.1") as base:  # loopback, plain HTTP: nothing changes for local use
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        assert httpx.get(f"{base}/", timeout=10).status_code == 200
