"""Swarm constraints (syntax, matching), the choice of hosts, and the service spec's handling of secrets."""

from __future__ import annotations

import json

import pytest

from streamctl.backends.swarm.placement import Unsatisfiable, Want, assign
from streamctl.backends.swarm.spec import service_spec
from streamctl.config import constraints as cons
from streamctl.config.load import parse_topology
from streamctl.errors import ConfigError

HOSTS = [cons.HostFacts("id-a", "db-1", "manager", labels={"tier": "db"}),
         cons.HostFacts("id-b", "db-2", "worker", labels={"tier": "db"}),
         cons.HostFacts("id-c", "web-1", "worker", labels={"tier": "web"})]


def test_parse_and_match() -> None:
    c = cons.parse("node.labels.tier == db")
    assert (c.key, c.op, c.value) == ("node.labels.tier", "==", "db")
    assert [h.hostname for h in HOSTS if cons.matches(h, (c,))] == ["db-1", "db-2"]
    not_manager = cons.parse("node.role!=manager")
    assert [h.hostname for h in HOSTS if cons.matches(h, (c, not_manager))] == ["db-2"]
    absent = cons.parse("node.labels.gpu != yes")  # a missing label is "not equal"
    assert all(cons.matches(h, (absent,)) for h in HOSTS)


@pytest.mark.parametrize("expr", ["node.labels.tier = db", "tier == db", "node.role == boss", "node.id ==", ""])
def test_bad_syntax_is_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        cons.parse(expr)


def test_topology_names_the_yaml_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_topology({"bind": "0.0.0.0", "placement": {"roles": {"worker": ["node.hostname = x"]},
                                                         "nodes": {"nope": []}}})
    text = "\n".join(err.value.details)
    assert "placement.roles.worker[0]" in text and "placement.nodes.nope: unknown node" in text


def test_swarm_backend_needs_an_explicit_all_interfaces_bind() -> None:
    with pytest.raises(ConfigError) as err:
        parse_topology({"backend": "swarm"})
    assert "bind: Swarm publishes ports on every interface" in "\n".join(err.value.details)
    assert parse_topology({"backend": "swarm", "bind": "0.0.0.0"}).backend == "swarm"


def test_workers_spread_over_matching_hosts() -> None:
    rule = (cons.parse("node.labels.tier == db"),)
    wants = [Want(f"worker-{i}", "worker", rule) for i in range(1, 5)]
    chosen = assign(wants, HOSTS, placed={"coordinator": ("id-a", "coordinator")})
    assert [chosen[f"worker-{i}"].hostname for i in range(1, 5)] == ["db-2", "db-1", "db-2", "db-1"]


def test_new_workers_go_where_fewest_are() -> None:
    placed = {"worker-1": ("id-a", "worker"), "worker-2": ("id-a", "worker"), "worker-3": ("id-b", "worker")}
    chosen = assign([Want("worker-4", "worker", ())], HOSTS, placed)
    assert chosen["worker-4"].hostname == "web-1"


def test_unsatisfiable_names_node_rule_and_hosts() -> None:
    with pytest.raises(Unsatisfiable) as err:
        assign([Want("worker-1", "worker", (cons.parse("node.labels.tier == gpu"),))], HOSTS, {})
    assert "worker-1" in str(err.value) and "node.labels.tier == gpu" in str(err.value) and "web-1" in str(err.value)


def test_passwords_only_in_secrets() -> None:
    t = parse_topology({"bind": "0.0.0.0", "mongo": {"enabled": True},
                        "placement": {"roles": {"redis": ["node.role == manager"]}}})
    secrets = {k: f"pw-{k}-x\"y" for k in ("postgres_password", "redis_password", "mongo_password")}
    for node in t.nodes():
        spec = service_spec(t, node, secrets)
        public = json.dumps({"env": spec.environment, "args": spec.command, "health": spec.healthcheck,
                             "definition": spec.definition()})
        assert not any(v in public for v in secrets.values()), node.name
        assert all(s.data in secrets.values() for s in spec.secrets if s.target != "streamctl-redis.conf")
    redis = service_spec(t, t.node("redis"), secrets)  # type: ignore[arg-type]
    assert redis.constraints == ("node.role == manager",)
    assert 'requirepass "pw-redis_password-x\\"y"\n' in redis.secrets[0].data
    assert redis.command == ["redis-server", "/run/secrets/streamctl-redis.conf"]  # nothing else in argv
    pg = service_spec(t, t.node("coordinator"), secrets)  # type: ignore[arg-type]
    assert pg.environment["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    changed = service_spec(t, t.node("coordinator"), {**secrets, "postgres_password": "other"})  # type: ignore[arg-type]
    assert changed.definition() != pg.definition()  # a new password is a new secret, so a service update


def test_tls_material_as_secrets() -> None:
    """With TLS: CA, certificate and key are secrets where the server's settings look, the key 0600 and owned
    by the server's user; no key in the service's definition; a new certificate is a new secret name."""
    from streamctl.tls import certs
    from streamctl.tls.material import NodeTls

    t = parse_topology({"bind": "0.0.0.0"})
    secrets = {k: f"pw-{k}" for k in ("postgres_password", "redis_password", "mongo_password")}
    ca = certs.new_ca(t.cluster)
    pair = certs.issue_server(ca, "coordinator", {"coordinator", "localhost"})
    tls = NodeTls(ca.cert, pair.cert, pair.key)
    pg = service_spec(t, t.node("coordinator"), secrets, tls)  # type: ignore[arg-type]
    files = {s.target: s for s in pg.secrets}
    assert files["server.key"].data == pair.key.decode() and files["server.key"].mode == 0o600
    assert files["server.key"].owner == "postgres" and files["server.crt"].mode == 0o644
    assert files["ca.crt"].data == ca.cert.decode()
    assert "ssl=on" in pg.command and "ssl_key_file=/run/secrets/server.key" in pg.command
    assert pair.key.decode() not in json.dumps(pg.definition())
    other = certs.issue_server(ca, "coordinator", {"coordinator", "localhost", "10.0.0.9"})
    renewed = service_spec(t, t.node("coordinator"), secrets,  # type: ignore[arg-type]
                           NodeTls(ca.cert, other.cert, other.key))
    assert {s.name for s in renewed.secrets} - {s.name for s in pg.secrets}  # secrets are immutable: new names
    assert renewed.definition() != pg.definition()
    assert all(len(s.name) <= 64 for s in renewed.secrets)  # Swarm's limit on a secret's name
    redis = service_spec(t, t.node("redis"), secrets, tls)  # type: ignore[arg-type]
    conf = next(s.data for s in redis.secrets if s.target == "streamctl-redis.conf")
    assert "port 0\n" in conf and "tls-port 6379" in conf and "tls-key-file /run/secrets/server.key" in conf
    assert "--tls --cacert /run/secrets/ca.crt" in redis.healthcheck[1]


def test_swarm_backend_is_selected_and_follows_the_protocol(tmp_path: object) -> None:
    """`backend: swarm` resolves to the Swarm backend, which implements every method of the Protocol
    (a merge that adds one, as `prepare` was, must not leave it behind); nothing connects yet."""
    from pathlib import Path

    from streamctl.backends import BACKENDS, select_backend
    from streamctl.backends.base import Backend
    from streamctl.backends.swarm.backend import SwarmBackend
    from streamctl.context import ClusterContext

    assert "swarm" in BACKENDS
    path = Path(str(tmp_path)) / "topology.yaml"
    ctx = ClusterContext.build(parse_topology({"backend": "swarm", "bind": "0.0.0.0"}), path)
    backend = select_backend(ctx)
    assert isinstance(backend, SwarmBackend) and isinstance(backend, Backend)
    protocol = {m for m in vars(Backend) if not m.startswith("_")} - {"name"}
    assert protocol <= set(dir(SwarmBackend))
