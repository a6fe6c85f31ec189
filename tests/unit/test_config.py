"""The topology model: the shipped files load; each malformed topology gives its own message and path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamctl.config import load_topology, parse_topology
from streamctl.config.model import Role
from streamctl.errors import ConfigError, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def test_default_topology_describes_the_platform() -> None:
    t = load_topology(ROOT / "topology.yaml", env={})
    names = [n.name for n in t.nodes()]
    assert names == ["coordinator", "worker-1", "worker-2", "analytics-primary", "analytics-replica-1",
                     "mongo", "redis"]
    assert t.citus and t.metadata.database == "metadata_db" and t.analytics.database == "analytics_db"
    assert t.analytics.tables == ("users", "user_watch_history")
    assert all(n.bind == "127.0.0.1" for n in t.nodes())
    assert dict(t.node("worker-1").settings)["shared_preload_libraries"] == "citus"  # type: ignore[union-attr]
    assert dict(t.node("analytics-primary").settings)["wal_level"] == "logical"  # type: ignore[union-attr]
    # a shard move's subscription on its target starts within 1 s, not PostgreSQL 15's 5 s launcher throttle
    assert dict(t.node("worker-1").settings)["wal_retrieve_retry_interval"] == "1s"  # type: ignore[union-attr]
    assert "wal_retrieve_retry_interval" not in dict(t.node("analytics-primary").settings)  # type: ignore[union-attr]


def test_no_citus_example_is_plain_postgres_without_mongo() -> None:
    t = load_topology(ROOT / "examples" / "no-citus.yaml", env={})
    assert not t.citus and not t.mongo.enabled
    assert [n.role for n in t.nodes()] == [Role.COORDINATOR, Role.ANALYTICS_PRIMARY, Role.ANALYTICS_REPLICA,
                                           Role.REDIS]
    assert "shared_preload_libraries" not in dict(t.nodes()[0].settings)


def test_interpolation_uses_environment_and_defaults() -> None:
    t = parse_topology({"secrets": {"redis_password": "${PW}", "postgres_password": "${NOPE:-fallback}",
                                    "fdw_password": "a$$b"}}, env={"PW": "s3cret"})
    assert t.secrets.redis_password == "s3cret"
    assert t.secrets.postgres_password == "fallback"
    assert t.secrets.fdw_password == "a$b"


def test_bind_override_and_worker_ports() -> None:
    t = parse_topology({"bind": "0.0.0.0", "metadata": {"workers": {"count": 3, "port": 20000}}}, env={})
    assert [n.port for n in t.nodes_by_role(Role.WORKER)] == [20000, 20001, 20002]
    assert t.nodes()[0].bind == "0.0.0.0" and t.nodes()[0].host == "127.0.0.1"


MALFORMED: list[tuple[str, object, str]] = [
    ("unknown top-level key", {"clusters": "x"}, "clusters: unknown key"),
    ("unknown nested key", {"metadata": {"citus": {"shards": 4}}}, "metadata.citus.shards: unknown key"),
    ("port not a number", {"redis": {"port": "abc"}}, "redis.port: expected a whole number, got 'abc'"),
    ("port out of range", {"mongo": {"port": 70000}}, "mongo.port: port 70000 is out of range"),
    ("port zero", {"redis": {"port": 0}}, "redis.port: port 0 is out of range"),
    ("negative worker count", {"metadata": {"workers": {"count": -1}}},
     "metadata.workers.count: must be at least 0, got -1"),
    ("duplicate port", {"redis": {"port": 15432}}, "redis.port: port 15432 is already used by metadata.coordinator"),
    ("duplicate port with a worker", {"analytics": {"primary": {"port": 15434}}},
     "analytics.primary.port: port 15434 is already used by worker-2 (metadata.workers.port + 1)"),
    ("duplicate name", {"redis": {"name": "coordinator"}}, "redis.name: name 'coordinator' is already used"),
    ("duplicate replica names", {"analytics": {"replicas": [{"name": "r", "port": 20001},
                                                            {"name": "r", "port": 20002}]}},
     "analytics.replicas[1].name: name 'r' is already used by analytics.replicas[0]"),
    ("replica without primary", {"analytics": {"primary": None}},
     "analytics.replicas: replicas need a primary"),
    ("analytics without primary or replicas", {"analytics": {"primary": None, "replicas": []}},
     "analytics.primary: analytics is enabled but has no primary"),
    ("fdw target missing", {"fdw": {"source": "analytics-replica-9"}},
     "fdw.source: 'analytics-replica-9' is not an analytics node"),
    ("fdw without analytics", {"analytics": {"enabled": False}},
     "fdw.enabled: the FDW needs the analytics role, which is disabled"),
    ("fdw table not published", {"fdw": {"tables": ["users", "payments"]}},
     "fdw.tables[1]: 'payments' is not one of analytics.tables"),
    ("unknown analytics table", {"analytics": {"tables": ["users", "orders"]}},
     "analytics.tables[1]: unknown table 'orders'"),
    ("unset variable", {"secrets": {"redis_password": "${STREAMCTL_TEST_UNSET_VAR}"}},
     "secrets.redis_password: environment variable STREAMCTL_TEST_UNSET_VAR is not set"),
    ("bad backend", {"backend": "kubernetes"},
     "backend: expected 'auto', 'docker', 'local', 'external' or 'swarm', got 'kubernetes'"),
    ("external port outside workers.nodes", {"external": {"port": 5432}},
     "external.port: set the node's own port instead"),
    ("bad cluster name", {"cluster": "My Cluster"}, "cluster: 'My Cluster' is not a valid name"),
    ("wrong type for section", {"redis": "yes"}, "redis: expected a mapping, got 'yes'"),
    ("wrong type for flag", {"mongo": {"enabled": "perhaps"}}, "mongo.enabled: expected true or false, got 'perhaps'"),
    ("replicas not a list", {"analytics": {"replicas": {"name": "r"}}},
     "analytics.replicas: expected a list, got a mapping"),
    ("replica missing port", {"analytics": {"replicas": [{"name": "r"}]}},
     "analytics.replicas[0].port: this key is required"),
    ("shard count zero", {"metadata": {"citus": {"shard_count": 0}}},
     "metadata.citus.shard_count: must be at least 1, got 0"),
    ("unsupported version", {"version": 2}, "version: expected 1, got the number 2"),
    ("workers past the last port", {"metadata": {"workers": {"count": 3, "port": 65534}}},
     "metadata.workers.port: 3 workers from port 65534 would need port 65536"),
    ("bad database identifier", {"analytics": {"database": "analytics-db"}},
     "analytics.database: 'analytics-db' is not a valid name"),
    ("skew threshold below one", {"verify": {"max_skew": 0.5}},
     "verify.max_skew: must be at least 1, got 0.5"),
    ("gateway port clash", {"gateway": {"port": 16379}}, "gateway.port: port 16379 is already used by redis"),
]


@pytest.mark.parametrize(("case", "data", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_topology_is_rejected_with_its_path(case: str, data: object, message: str,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={})
    assert info.value.exit_code == ExitCode.CONFIG
    assert any(d.startswith(f"{path}: ") and message in d for d in info.value.details), info.value.details


@pytest.mark.parametrize("text", ["", "   \n\n\t\n", "# just a comment\n"], ids=["empty", "whitespace", "comments"])
def test_empty_topology_file_is_an_error_saying_how_to_ask_for_defaults(text: str, tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={})
    assert info.value.exit_code == ExitCode.CONFIG
    assert str(path) in info.value.message
    assert info.value.hint is not None and "version: 1" in info.value.hint
    path.write_text("version: 1\n")  # what the hint says gives the default platform
    assert load_topology(path, env={}).cluster == "streamplat"


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_topology({"redis": {"port": 15432}, "mongo": {"port": 15442}, "fdw": {"source": "x"}}, env={})
    assert len(info.value.details) == 3


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("cluster: a\nredis: {port: 1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_topology(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_topology(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_topology(["a", "b"])


def test_models_are_frozen() -> None:
    t = parse_topology({}, env={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError for frozen instances
        t.redis.port = 1  # type: ignore[misc]


def _hba_errors(data: dict) -> list[str]:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        parse_topology(data, env={})
    assert info.value.exit_code == ExitCode.CONFIG
    return [d.removeprefix("<topology>: ") for d in info.value.details]  # the file's name comes first


def test_a_host_name_that_would_go_into_pg_hba_is_refused_with_its_path() -> None:
    """A replica's address is admitted by IP on its managed primary: a host name there is refused at load."""
    base = {"backend": "local", "analytics": {"replicas": [{"name": "r1", "port": 16001, "bind": "replica.lan"}]}}
    errors = _hba_errors(base)
    assert any(e.startswith("analytics.replicas[0].bind: 'replica.lan' is not an IP address") for e in errors)
    # The FDW reads from the primary: the coordinator's address is admitted there too.
    errors = _hba_errors({"backend": "local", "metadata": {"coordinator": {"bind": "coord.lan"}}})
    assert any(e.startswith("metadata.coordinator.bind:") for e in errors), errors
    # An external replica's address comes from its external settings.
    ext = {"backend": "local", "external": {"host": "db.lan"},
           "analytics": {"replicas": [{"name": "r1", "port": 16001, "backend": "external"}]}}
    assert any(e.startswith("external.host: 'db.lan'") for e in _hba_errors(ext))
    ext["analytics"]["replicas"][0]["external"] = {"citus_host": "r1.lan"}  # type: ignore[index]
    assert any(e.startswith("analytics.replicas[0].external.citus_host: 'r1.lan'") for e in _hba_errors(ext))


def test_ip_addresses_and_external_primaries_pass_the_pg_hba_check() -> None:
    ok = parse_topology({"backend": "local", "analytics": {"replicas": [
        {"name": "r1", "port": 16001, "bind": "127.0.0.2"}, {"name": "r2", "port": 16002, "bind": "::1"}]}}, env={})
    assert [n.bind for n in ok.nodes() if n.role is Role.ANALYTICS_REPLICA] == ["127.0.0.2", "::1"]
    # The primary is external: its pg_hba is its administrator's, so a replica's host name is fine.
    parse_topology({"backend": "local", "external": {"host": "db.lan"},
                    "analytics": {"primary": {"backend": "external"},
                                  "replicas": [{"name": "r1", "port": 16001, "backend": "external"}]},
                    "fdw": {"enabled": False}}, env={})


def test_render_hba_refuses_a_host_name_before_writing() -> None:
    from streamctl.errors import StepError
    from streamctl.services.postgres import HbaRule, render_hba

    with pytest.raises(StepError, match="'db.lan' is not an IP address"):
        render_hba("streamctl", [HbaRule("analytics_db", "repl", ("10.0.0.5", "db.lan"))])
    text = render_hba("streamctl", [HbaRule("analytics_db", "repl", ("::1", "10.1.0.0/16"))])
    assert "::1/128" in text and "10.1.0.0/16" in text


def test_slot_wal_bound_is_set_on_the_primary_only_and_checked() -> None:
    t = parse_topology({"analytics": {"max_slot_wal_keep_size": "512MB"}}, env={})
    settings = {n.name: dict(n.settings) for n in t.nodes() if n.is_postgres}
    assert settings["analytics-primary"]["max_slot_wal_keep_size"] == "512MB"
    assert "max_slot_wal_keep_size" not in settings["analytics-replica-1"]
    assert "max_slot_wal_keep_size" not in settings["coordinator"]
    assert dict(parse_topology({}, env={}).node("analytics-primary").settings)[  # type: ignore[union-attr]
        "max_slot_wal_keep_size"] == "4GB"
    assert parse_topology({"analytics": {"max_slot_wal_keep_size": 1024}}, env={}).analytics \
        .max_slot_wal_keep_size == "1024"  # a bare number is megabytes, as PostgreSQL reads it
    assert parse_topology({"analytics": {"max_slot_wal_keep_size": -1}}, env={}).analytics \
        .max_slot_wal_keep_size == "-1"
    with pytest.raises(ConfigError) as info:
        parse_topology({"analytics": {"max_slot_wal_keep_size": "lots; fsync=off"}}, env={})
    assert "analytics.max_slot_wal_keep_size: 'lots; fsync=off' is not a size" in info.value.details[0]


def _errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_topology(path, env=env or {})
    prefix = f"{path}: "
    assert all(d.startswith(prefix) for d in info.value.details)
    return [d[len(prefix):] for d in info.value.details]


def test_three_independent_errors_are_three_errors_in_one_pass(tmp_path: Path) -> None:
    """A bad cluster name (a type error) no longer hides a port clash (a cross-field check)."""
    errors = _errors(tmp_path, "version: 1\ncluster: My Cluster\nredis:\n  port: 15432\nmongo:\n  enabled: perhaps\n")
    assert errors == [
        "cluster: 'My Cluster' is not a valid name (lowercase letters, digits and '-' or '_') (line 2)",
        "mongo.enabled: expected true or false, got 'perhaps' (line 6)",
        "redis.port: port 15432 is already used by metadata.coordinator (line 4)",
    ]


def test_a_value_set_aside_adds_no_error_of_its_own_default(tmp_path: Path) -> None:
    """redis.port is invalid: its default must not then be reported as clashing with anything."""
    errors = _errors(tmp_path, "redis:\n  port: abc\nmongo:\n  port: 16379\n")
    assert errors == ["redis.port: expected a whole number, got 'abc' (line 2)"]


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "version: 1\nredis:\n  port: 7000\nmongo: {enabled: false}\nredis:\n  port: 7001\n")
    assert errors == ["redis: key 'redis' is written twice (lines 2 and 5); YAML would keep only the last"]
    nested = _errors(tmp_path, "redis:\n  port: 7000\n  port: 7001\n")
    assert nested == ["redis.port: key 'port' is written twice (lines 2 and 3); YAML would keep only the last"]


@pytest.mark.parametrize(("text", "expected"), [
    ("metdata:\n  citus: {enabled: false}\n", "metdata: unknown key (did you mean 'metadata'?) (line 1)"),
    ("redis:\n  prot: 7000\n", "redis.prot: unknown key (did you mean 'port'?) (line 2)"),
    ("analytics:\n  replicas:\n    - name: r\n      port: 20001\n      imgae: x\n",
     "analytics.replicas[0].imgae: unknown key (did you mean 'image'?) (line 5)"),
    ("flavour: blue\n", "flavour: unknown key (line 1)"),  # nothing close: no guess
])
def test_an_unknown_key_suggests_the_key_meant(tmp_path: Path, text: str, expected: str) -> None:
    assert _errors(tmp_path, text) == [expected]


def test_messages_say_what_was_expected_and_what_was_found_with_its_line(tmp_path: Path) -> None:
    text = "version: 1\n" + "# padding\n" * 38 + "redis:\n  - port: 1\n"
    assert _errors(tmp_path, text) == ["redis: expected a mapping, got a list (line 40)"]


def test_an_unset_variable_is_one_error_that_says_to_set_it(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "redis:\n  port: ${STREAMCTL_TEST_UNSET_PORT}\n")
    assert errors == ["redis.port: environment variable STREAMCTL_TEST_UNSET_PORT is not set (set it, or write "
                      "${STREAMCTL_TEST_UNSET_PORT:-default}) (line 2)"]
    path = tmp_path / "topology.yaml"
    assert load_topology(path, env={"STREAMCTL_TEST_UNSET_PORT": "7000"}).redis.port == 7000


def test_a_worker_port_clash_names_the_key_that_was_set(tmp_path: Path) -> None:
    """Workers are derived from metadata.workers: `metadata.workers[1]` is nowhere in the file."""
    errors = _errors(tmp_path, "metadata:\n  workers:\n    count: 2\n    port: 16378\n")
    assert errors == ["redis.port: port 16379 is already used by worker-2 (metadata.workers.port + 1)"]
    errors = _errors(tmp_path, "redis:\n  port: 7001\nmetadata:\n  workers:\n    count: 2\n    port: 7000\n")
    assert errors == ["redis.port: port 7001 is already used by worker-2 (metadata.workers.port + 1) (line 2)"]
    errors = _errors(tmp_path, "mongo:\n  enabled: true\n  port: 7001\nredis:\n  enabled: false\nmetadata:\n"
                               "  workers:\n    count: 2\n    port: 7000\n")
    assert errors == ["mongo.port: port 7001 is already used by worker-2 (metadata.workers.port + 1) (line 3)"]
    errors = _errors(tmp_path, "metadata:\n  coordinator: {port: 7001}\n  workers:\n    count: 2\n    port: 7000\n")
    assert errors == ["metadata.workers.port: port 7001 (worker-2's) is already used by metadata.coordinator "
                      "(line 5)"]


def test_a_backend_override_is_validated_like_the_file(tmp_path: Path) -> None:
    """`--backend swarm` replaces `backend:` before the checks: a loopback bind, fine on Docker, is refused
    with its YAML path, and the topology read says the backend it will run on."""
    path = tmp_path / "topology.yaml"
    path.write_text("version: 1\ncluster: c1\nbackend: docker\nbind: 127.0.0.1\n")
    assert load_topology(path).backend == "docker"
    with pytest.raises(ConfigError) as info:
        load_topology(path, backend="swarm")
    assert any(": bind: " in d and "0.0.0.0" in d for d in info.value.details), info.value.details
    path.write_text("version: 1\ncluster: c1\nbackend: docker\nbind: 0.0.0.0\n")
    assert load_topology(path, backend="swarm").backend == "swarm"
    assert load_topology(path, backend="local").backend == "local"
