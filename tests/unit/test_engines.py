"""streamctl/engines/: every connection string, URI and configuration line reads back, through the engine's
own parser (libpq's, redis.conf's, a URI parser), as the secret it was built from."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

from streamctl.backends.docker.spec import secure_spec
from streamctl.backends.local.recipes import recipe_for
from streamctl.backends.swarm.spec import REDIS_CONF, service_spec
from streamctl.config.load import parse_topology
from streamctl.config.model import Topology
from streamctl.engines import mongo, postgres, redis
from streamctl.tls import certs
from streamctl.tls.material import NodeTls

AWKWARD = ["plain", "a b", "it's", 'say "hi"', "back\\slash", "trailing\\", "", " lead", "tab\there",
           "new\nline", "=eq=", "it's a \"mix\" \\ of = all\\", "ünïcode ☃"]
IN_URIS = [s for s in AWKWARD if s]  # in a URI an empty password is no password at all


def redis_split(line: str) -> list[str]:
    """A port of redis' sdssplitargs (src/sds.c), which reads each line of redis.conf."""
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        cur, quote, done = "", "", False  # quote: the one that opened the argument being read, if any
        while not done:
            ch = line[i] if i < n else ""
            nxt = line[i + 1] if i + 1 < n else ""
            if quote:
                hexpair = line[i + 2:i + 4]
                if quote == '"' and ch == "\\" and nxt == "x" and len(hexpair) == 2 and all(
                        c in string.hexdigits for c in hexpair):
                    cur += chr(int(hexpair, 16))
                    i += 3
                elif quote == '"' and ch == "\\" and nxt:
                    i += 1
                    cur += {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(nxt, nxt)
                elif quote == "'" and ch == "\\" and nxt == "'":
                    i += 1
                    cur += "'"
                elif ch == quote:
                    if nxt and not nxt.isspace():
                        raise ValueError("closing quote must be followed by a space")
                    done = True
                elif not ch:
                    raise ValueError("unbalanced quotes")
                else:
                    cur += ch
            elif ch in (" ", "\n", "\r", "\t", ""):
                done = True
            elif ch in ('"', "'"):
                quote = ch
            else:
                cur += ch
            if i < n:
                i += 1
        args.append(cur)


def redis_conf_value(text: str, directive: str) -> str:
    """The argument of `directive` in a redis.conf, read as Redis reads the file (line by line, trimmed)."""
    for line in text.split("\n"):
        line = line.strip(" \t\r\n")
        if line and not line.startswith("#"):
            args = redis_split(line)
            if args[0] == directive:
                assert len(args) == 2, args
                return args[1]
    raise AssertionError(f"no {directive} in {text!r}")


def test_the_redis_split_port_reads_what_redis_documents() -> None:
    assert redis_split('set "a b" \'c\\\'d\' "x\\x41\\n"') == ["set", "a b", "c'd", "xA\n"]
    with pytest.raises(ValueError):
        redis_split('"a"b')


# -- PostgreSQL -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", AWKWARD)
def test_a_conninfo_reads_back_through_libpq(secret: str) -> None:
    built = postgres.conninfo(host="h", port=5432, user="u", password=secret, application_name="streamctl")
    assert conninfo_to_dict(built) == {"host": "h", "port": "5432", "user": "u", "password": secret,
                                       "application_name": "streamctl"}
    assert conninfo_to_dict(postgres.authinfo(secret)) == {"password": secret}


def test_a_plain_value_stays_bare_as_before() -> None:
    """Generated secrets (URL-safe) give the strings earlier versions stored: nothing changes for them."""
    assert postgres.conninfo(host="10.0.0.1", port=5432, password="aB-_9") == "host=10.0.0.1 port=5432 password=aB-_9"
    assert postgres.authinfo("aB-_9") == "password=aB-_9"
    assert postgres.conninfo(password="a b") == "password='a b'" and postgres.conninfo(password="") == "password=''"


@pytest.mark.parametrize("secret", IN_URIS)
def test_a_uri_reads_back_through_urllib_and_libpq(secret: str) -> None:
    user = "us er@x"
    params = {"sslmode": "verify-full", "sslrootcert": "/a b/ca.crt", "options": "-c lock_timeout=60s"}
    uri = postgres.uri("127.0.0.1", 5433, "my db", user, secret, params)
    parts = urlsplit(uri)
    assert unquote(parts.username or "") == user and unquote(parts.password or "") == secret
    assert parts.hostname == "127.0.0.1" and parts.port == 5433 and unquote(parts.path) == "/my db"
    parsed = conninfo_to_dict(uri)
    assert parsed["password"] == secret and parsed["user"] == user and parsed["dbname"] == "my db"
    assert parsed["sslrootcert"] == "/a b/ca.crt" and parsed["options"] == "-c lock_timeout=60s"


@pytest.mark.parametrize("secret", IN_URIS)
def test_a_leader_uri_names_every_member_and_asks_for_the_primary(secret: str) -> None:
    members = [("127.0.0.1", 15432), ("127.0.0.1", 17432), ("10.0.0.2", 17433)]
    uri = postgres.leader_uri(members, "my db", "u", secret, {"sslmode": "verify-full"})
    parsed = conninfo_to_dict(uri)
    assert parsed["host"] == "127.0.0.1,127.0.0.1,10.0.0.2" and parsed["port"] == "15432,17432,17433"
    assert parsed["target_session_attrs"] == "primary" and parsed["password"] == secret
    assert parsed["dbname"] == "my db" and parsed["sslmode"] == "verify-full"
    assert conninfo_to_dict(postgres.conninfo(**postgres.leader_params(members), password=secret)) == {
        "host": parsed["host"], "port": parsed["port"], "target_session_attrs": "primary", "password": secret}
    # one address is the plain URI, as before
    assert postgres.leader_uri(members[:1], "d", "u", secret) == postgres.uri("127.0.0.1", 15432, "d", "u", secret)


def test_postgresql_conf_lines_quote_as_the_server_reads_them() -> None:
    assert postgres.conf_line("ssl", "on") == "ssl = 'on'"
    assert postgres.conf_line("x", "it's \\ here") == "x = 'it''s \\\\ here'"


def test_citus_node_conninfo_comes_from_the_topology_and_reads_back() -> None:
    t = Topology()
    coordinator, primary = t.node("coordinator"), t.node("analytics-primary")
    assert coordinator is not None and primary is not None
    assert t.runs_citus(coordinator.role) and not t.runs_citus(primary.role)
    assert not parse_topology({"metadata": {"citus": {"enabled": False}}}).runs_citus(coordinator.role)
    settings = dict(postgres.tls_settings("/tls dir", citus=True))
    assert conninfo_to_dict(settings["citus.node_conninfo"]) == {"sslmode": "verify-full",
                                                                 "sslrootcert": "/tls dir/ca.crt"}
    assert "citus.node_conninfo" not in dict(postgres.tls_settings("/tls", citus=False))


def test_docker_and_swarm_give_node_conninfo_to_citus_nodes_only() -> None:
    """Decided from the topology (the coordinator and workers run Citus), not from a node's settings."""
    ca = certs.new_ca("c")
    secrets = {"postgres_password": "a", "redis_password": "b", "mongo_password": "c"}
    for citus in (True, False):
        t = parse_topology({"metadata": {"citus": {"enabled": citus}}})
        for node in t.nodes():
            if not node.is_postgres:
                continue
            pair = certs.issue_server(ca, node.name, {node.name})
            tls = NodeTls(ca.cert, pair.cert, pair.key)
            wanted = citus and node.role.value in ("coordinator", "worker")
            docker = " ".join(secure_spec(t, node, secrets, tls).command)
            swarm = " ".join(service_spec(t, node, secrets, tls).command)
            assert ("citus.node_conninfo=" in docker) is wanted and ("citus.node_conninfo=" in swarm) is wanted


# -- Redis ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", AWKWARD)
def test_redis_conf_reads_back_as_redis_reads_it(secret: str) -> None:
    for tls_dir in (None, "/etc/streamctl/tls", "/a dir/tls"):
        text = redis.conf(secret, 6379, tls_dir, ["dir /data"])
        assert redis_conf_value(text, "requirepass") == secret
        if tls_dir:
            assert redis_conf_value(text, "tls-cert-file") == f"{tls_dir}/server.crt"


@pytest.mark.parametrize("secret", IN_URIS)
def test_redis_url_reads_back_through_redis_py(secret: str) -> None:
    from redis.connection import parse_url

    parsed = parse_url(redis.url("127.0.0.1", 6380, secret, tls=True, ca_file="/a b/ca.crt"))
    assert parsed["password"] == secret and parsed["host"] == "127.0.0.1" and parsed["port"] == 6380
    assert parsed["ssl_ca_certs"] == "/a b/ca.crt"
    assert unquote(urlsplit(redis.url("h", 1, secret, tls=False)).password or "") == secret


@pytest.mark.parametrize("secret", ["it's a \"mix\" \\ of = all\\", "new\nline"])
def test_every_backend_writes_the_same_quoted_password_into_redis_conf(tmp_path, secret: str) -> None:
    """The local backend, Docker and Swarm render redis.conf with the one renderer (engines/redis.py)."""
    t = Topology()
    node = t.node("redis")
    assert node is not None
    secrets = {"postgres_password": "p", "redis_password": secret, "mongo_password": "m"}
    local = recipe_for(node, tmp_path, t, secrets, None).config_text()
    docker = next(f for f in secure_spec(t, node, secrets, None).files if f.path.endswith("redis.conf"))
    swarm = next(f for f in service_spec(t, node, secrets).secrets if f.target == REDIS_CONF)
    for text in (local, docker.content.decode(), swarm.data):
        assert redis_conf_value(text, "requirepass") == secret
        assert redis_conf_value(text, "appendonly") == "yes"
    assert redis_conf_value(local, "dir") == str(tmp_path / "data")
    assert secret not in repr((service_spec(t, node, secrets).environment, service_spec(t, node, secrets).command))


# -- MongoDB ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", IN_URIS)
def test_a_mongo_uri_reads_back(secret: str, tmp_path: Path) -> None:
    from pymongo.uri_parser import parse_uri

    ca = tmp_path / "a b" / "ca.crt"  # pymongo opens the CA file it is given
    ca.parent.mkdir()
    ca.write_text("")
    uri = mongo.uri("127.0.0.1", 27018, "app user", secret, "streaming", timeouts=True, ca_file=str(ca))
    parts = urlsplit(uri)
    assert unquote(parts.username or "") == "app user" and unquote(parts.password or "") == secret
    parsed = parse_uri(uri)
    assert parsed["username"] == "app user" and parsed["password"] == secret
    assert parsed["options"]["authSource"] == "streaming" and parsed["options"]["tlsCAFile"] == str(ca)


def test_mongo_uris_keep_their_earlier_shape() -> None:
    assert mongo.uri("h", 1) == "mongodb://h:1/?directConnection=true"
    assert mongo.uri("h", 1, "u", "p", "admin", timeouts=True) == (
        f"mongodb://u:p@h:1/?authSource=admin&directConnection=true&{mongo.TIMEOUTS}")
    assert mongo.uri("h", 1, ca_file="/x/ca.crt") == "mongodb://h:1/?directConnection=true&tls=true&tlsCAFile=/x/ca.crt"


def test_docker_and_swarm_redis_conf_keep_their_text() -> None:
    """Their definitions hash this text (a Swarm secret is named by it): unchanged for a generated password, so
    no running container or service is replaced by the move to engines/."""
    from streamctl.backends.docker import spec as docker_spec
    from streamctl.backends.swarm import spec as swarm_spec

    docker = b'# managed by streamctl\nport 6379\nrequirepass "aB-_9"\nappendonly yes\n'
    assert docker_spec.redis_conf("aB-_9", False) == docker
    assert swarm_spec._redis_conf("aB-_9", True) == (
        "port 0\ntls-port 6379\ntls-cert-file /run/secrets/server.crt\ntls-key-file /run/secrets/server.key\n"
        'tls-ca-cert-file /run/secrets/ca.crt\ntls-auth-clients no\nrequirepass "aB-_9"\nappendonly yes\n')
