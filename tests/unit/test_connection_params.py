"""The parameters every streamctl connection carries: TCP keepalives and lock_timeout for PostgreSQL (for
provisioned nodes' URIs and external nodes' keywords alike), timeouts for MongoDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from streamctl.config import parse_topology
from streamctl.context import ClusterContext
from streamctl.errors import ConfigError
from streamctl.pgconn import LOCK_TIMEOUT_VAR
from streamctl.state import Endpoint

EXPECTED = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
            "connect_timeout": "5"}


def _ctx(tmp_path: Path, **extra: object) -> ClusterContext:
    t = parse_topology({"backend": "local", "redis": {"enabled": False}, "mongo": {"enabled": True},
                        "metadata": {"citus": {"enabled": False}, "workers": {"count": 0}}, **extra}, env={})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    ctx.store.record_endpoints("local", [Endpoint(n.name, n.role.value, n.engine.value, "local", "127.0.0.1",
                                                  n.port, "127.0.0.1", n.port, n.database)
                                         for n in t.nodes()])
    ctx._secrets = {"postgres_password": "p w+/", "gateway_password": "g", "mongo_password": "m",
                    "mongo_app_password": "a"}
    return ctx


def test_provisioned_nodes_get_keepalives_and_lock_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_TIMEOUT_VAR, raising=False)
    ctx = _ctx(tmp_path)
    for info in (ctx.pg_conninfo("coordinator"), ctx.gateway_conninfo("analytics-primary")):
        params = conninfo_to_dict(info)  # libpq's own parser: what the server is sent
        assert EXPECTED.items() <= params.items(), params
        assert params["options"] == "-c lock_timeout=60s"
    assert conninfo_to_dict(ctx.pg_conninfo("coordinator"))["password"] == "p w+/"  # quoting intact


def test_external_nodes_get_them_too_and_the_wait_is_configurable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_TIMEOUT_VAR, "5min")
    ctx = _ctx(tmp_path, metadata={"citus": {"enabled": False}, "workers": {"count": 0},
                                   "coordinator": {"backend": "external", "external": {"host": "10.1.2.3"}}})
    params = conninfo_to_dict(ctx.pg_conninfo("coordinator"))
    assert params["host"] == "10.1.2.3" and EXPECTED.items() <= params.items()
    assert params["options"] == "-c lock_timeout=5min"
    monkeypatch.setenv(LOCK_TIMEOUT_VAR, "soon")
    with pytest.raises(ConfigError, match=f"{LOCK_TIMEOUT_VAR}='soon' is not a duration"):
        ctx.pg_conninfo("coordinator")


def test_mongo_clients_time_out(tmp_path: Path) -> None:
    uri = _ctx(tmp_path).mongo_uri()
    for part in ("connectTimeoutMS=5000", "serverSelectionTimeoutMS=5000", "socketTimeoutMS=120000"):
        assert part in uri


def test_redis_clients_time_out(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, redis={"enabled": True})
    ctx._secrets = {**(ctx._secrets or {}), "redis_password": "r"}
    client = ctx.redis()  # does not connect until used
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 10 and kwargs["socket_connect_timeout"] == 5 and kwargs["socket_keepalive"]


def test_mongo_clients_verify_the_cluster_ca_when_tls_is_on(tmp_path: Path) -> None:
    """streamctl's own MongoDB connections (users and collections, as well as the app's URI) use TLS
    against the cluster CA when the cluster's TLS covers the server; plain when TLS is off."""
    from streamctl.services.mongo import MongoService

    ctx = _ctx(tmp_path, tls={"enabled": True})
    node = ctx.node(ctx.topology.mongo.name)
    ca = str(ctx.tls.ca_file)
    for uri in (ctx.mongo_uri(), ctx.mongo_uri(admin=True), MongoService(ctx, node)._uri("root", "x", "admin")):
        assert "tls=true" in uri and f"tlsCAFile={ca}" in uri, uri
    plain = _ctx(tmp_path / "plain", tls={"enabled": False})
    assert "tls=" not in MongoService(plain, plain.node(plain.topology.mongo.name))._uri("root", "x", "admin")
