"""The Docker backend's container definitions and convergence fingerprints, as pure data (no engine)."""

from __future__ import annotations

from dataclasses import replace

from streamctl.backends.base import fingerprint
from streamctl.backends.docker.images import split_reference
from streamctl.backends.docker.spec import PGDATA, container_spec
from streamctl.config.model import Topology
from streamctl.names import MONGO_ROOT_USER

SECRETS = {"postgres_password": "pg-pw", "redis_password": "redis-pw", "mongo_password": "mongo-pw"}


def spec_of(topology: Topology, name: str):
    node = topology.node(name)
    assert node is not None
    return container_spec(topology, node, SECRETS)


def test_postgres_through_the_official_image_interface() -> None:
    t = Topology()
    s = spec_of(t, "coordinator")
    assert s.image == "citusdata/citus:12.1"
    assert s.environment == {"POSTGRES_USER": "streamctl", "POSTGRES_PASSWORD": "pg-pw",
                             "POSTGRES_DB": "metadata_db", "PGDATA": PGDATA,
                             "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --locale=C.UTF-8"}
    assert s.command[:3] == ["postgres", "-c", "listen_addresses=*"]
    pairs = list(zip(s.command[1::2], s.command[2::2], strict=True))
    assert all(flag == "-c" for flag, _ in pairs)
    assert "shared_preload_libraries=citus" in s.command and "wal_level=logical" in s.command
    assert PGDATA.startswith(s.mount + "/")  # the data directory lives on the node's volume
    assert (s.container_port, s.host_ip, s.host_port) == (5432, "127.0.0.1", 15432)
    assert s.stop_signal == "SIGINT"


def test_analytics_nodes_do_not_preload_citus() -> None:
    s = spec_of(Topology(), "analytics-primary")
    assert s.environment["POSTGRES_DB"] == "analytics_db"
    assert not any(arg.startswith("shared_preload_libraries") for arg in s.command)


def test_redis_and_mongo() -> None:
    t = Topology()
    r = spec_of(t, "redis")
    assert r.command == ["redis-server", "--requirepass", "redis-pw", "--appendonly", "yes", "--port", "6379"]
    assert r.environment == {} and r.mount == "/data"
    m = spec_of(t, "mongo")
    assert m.command == []  # the image's own default (mongod)
    assert m.environment == {"MONGO_INITDB_ROOT_USERNAME": MONGO_ROOT_USER,
                             "MONGO_INITDB_ROOT_PASSWORD": "mongo-pw"}
    assert (m.container_port, m.mount) == (27017, "/data/db")


def test_names_are_per_cluster() -> None:
    t = Topology(cluster="demo")
    s = spec_of(t, "worker-2")
    assert (s.name, s.volume) == ("demo-worker-2", "demo-worker-2-data")
    assert s.labels["io.streamctl.cluster"] == "demo" and s.labels["io.streamctl.role"] == "worker"


def test_fingerprint_follows_the_container_definition_only() -> None:
    t = Topology()
    node = t.node("redis")
    assert node is not None
    base = fingerprint(container_spec(t, node, SECRETS).definition())
    assert fingerprint(container_spec(t, replace(node, image="redis:7.2"), SECRETS).definition()) != base
    assert fingerprint(container_spec(t, replace(node, port=16380), SECRETS).definition()) != base
    other = Topology.model_validate({"redis": {"cache_ttl_seconds": 60}})  # not part of the container
    assert fingerprint(container_spec(other, node, SECRETS).definition()) == base


def test_split_reference() -> None:
    assert split_reference("postgres:16") == ("postgres", "16")
    assert split_reference("citusdata/citus:12.1") == ("citusdata/citus", "12.1")
    assert split_reference("redis") == ("redis", "latest")
    assert split_reference("localhost:5000/team/pg") == ("localhost:5000/team/pg", "latest")
    assert split_reference("localhost:5000/pg:15") == ("localhost:5000/pg", "15")
    assert split_reference("pg@sha256:abc") == ("pg", "sha256:abc")


def test_the_backend_puts_secrets_in_files_never_in_env_argv_or_healthcheck() -> None:
    from streamctl.backends.docker.spec import secure_spec
    from streamctl.tls import certs
    from streamctl.tls.material import NodeTls

    ca = certs.new_ca("c")
    t = Topology()
    for node in t.nodes():
        pair = certs.issue_server(ca, node.name, {node.name})
        s = secure_spec(t, node, SECRETS, NodeTls(ca.cert, pair.cert, pair.key))
        visible = repr((s.environment, s.command, s.healthcheck, s.labels))
        assert not [pw for pw in SECRETS.values() if pw in visible], node.name
        files = {f.path: f for f in s.files}
        assert files["/etc/streamctl/tls/server.key"].mode == 0o600
        assert all(f.mode == 0o600 for f in s.files if "password" in f.path or f.path.endswith((".key", ".conf")))
        assert any(SECRETS[k].encode() in f.content for f in s.files for k in SECRETS)
    mongo = t.node("mongo")
    assert mongo is not None
    s = secure_spec(t, mongo, SECRETS, None)  # TLS off: still no password in sight
    assert "mongo-pw" not in repr((s.environment, s.command)) and "MONGO_INITDB_ROOT_PASSWORD_FILE" in s.environment
