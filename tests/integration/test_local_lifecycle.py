"""The local-process backend against real PostgreSQL and Redis: lifecycle, persistence, crash recovery."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from streamctl.backends.base import Action, NodeState
from streamctl.errors import ConfigError
from tests.support.cli import streamctl

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_up_records_state_and_secrets_privately(make_cluster) -> None:
    c = make_cluster(replicas=1)
    c.up()
    store = c.ctx.store
    assert stat.S_IMODE(store.secrets_file.stat().st_mode) == 0o600
    secrets = json.loads(store.secrets_file.read_text())
    assert len(secrets["postgres_password"]) >= 24
    endpoints = store.endpoints()
    assert set(endpoints) == {"coordinator", "analytics-primary", "analytics-replica-1", "redis"}
    assert all(e.host == "127.0.0.1" for e in endpoints.values())
    # the password never appears in state.json or in the node configuration PostgreSQL reads
    assert secrets["postgres_password"] not in store.state_file.read_text()


def test_second_up_is_a_noop(make_cluster) -> None:
    c = make_cluster()
    assert c.up().changed
    second = c.up()
    assert not second.changed
    assert all(s.action is Action.NOOP for s in second.node_steps)
    assert second.config_changes == []


def test_data_survives_down_and_up_and_volumes_remove_it(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO genres VALUES (1, 'Drama')")
    r = c.ctx.redis()
    r.set("kept", "yes")
    r.close()
    c.down()
    assert all(c.backend.observe(n).state is NodeState.STOPPED for n in c.topology.nodes())
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT name FROM genres").fetchall() == [("Drama",)]
    r = c.ctx.redis()
    assert r.get("kept") == "yes"
    r.close()
    c.down(volumes=True)
    assert not c.ctx.store.root.exists()
    assert all(c.backend.observe(n).state is NodeState.MISSING for n in c.topology.nodes())
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT count(*) FROM genres").fetchone() == (0,)


def test_killed_node_is_restarted_by_next_up(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    c.up()
    coordinator = c.topology.node("coordinator")
    redis = c.topology.node("redis")
    c.backend.kill(coordinator)
    c.backend.kill(redis)
    plan = {s.node.name: s.action for s in c.runner.plan()}
    assert plan["coordinator"] is Action.START and plan["redis"] is Action.START
    c.up()
    assert c.backend.observe(coordinator).state is NodeState.RUNNING
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_changed_definition_recreates_only_that_node(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    c.up()
    before = {n.name: c.backend.observe(n).detail for n in c.topology.nodes()}
    data = yaml.safe_load(c.path.read_text())
    data["redis"]["bind"] = "127.0.0.2"  # part of the node's definition
    c.path.write_text(yaml.safe_dump(data))
    c.reload()
    plan = {s.node.name: s.action for s in c.runner.plan()}
    assert plan == {"coordinator": Action.NOOP, "analytics-primary": Action.NOOP, "redis": Action.RECREATE}
    c.up()
    after = {n.name: c.backend.observe(n).detail for n in c.topology.nodes()}
    assert after["coordinator"] == before["coordinator"]
    assert after["redis"] != before["redis"]
    r = c.ctx.redis()
    assert r.ping() and c.ctx.endpoint("redis").host == "127.0.0.2"
    r.close()


def test_malformed_topology_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text("cluster: broken\nredis: {port: 99999}\nbackend: local\n")
    proc = streamctl("up", "-f", str(tmp_path / "topology.yaml"))
    assert proc.returncode == 3
    assert "redis.port: port 99999 is out of range" in proc.stderr
    assert not (tmp_path / ".streamctl").exists()


def test_missing_binary_is_a_preflight_error(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    proc = streamctl("up", "-f", str(c.path), env={"PATH": "/nonexistent"})
    assert proc.returncode == 4, proc.stderr
    assert "redis-server is not on PATH" in proc.stderr or "initdb" in proc.stderr
    assert not c.ctx.store.node_dir("coordinator").exists()


def test_cli_status_json_logs_url_and_psql(make_cluster) -> None:
    c = make_cluster(replicas=1)
    f = str(c.path)
    up = streamctl("up", "-f", f)
    assert up.returncode == 0
    secrets = json.loads(c.ctx.store.secrets_file.read_text())
    assert not any(v in up.stdout + up.stderr for v in secrets.values())  # never printed
    assert not any(v in c.ctx.store.state_file.read_text() for v in secrets.values())
    status = json.loads(streamctl("status", "-f", f, "--json").stdout)["nodes"]
    assert {s["name"] for s in status} == {"coordinator", "analytics-primary", "analytics-replica-1", "redis"}
    assert all(s["healthy"] and s["backend"] == "local" and s["host"] == "127.0.0.1" for s in status)
    assert all({"name", "role", "backend", "host", "port", "healthy"} <= set(s) for s in status)
    logs = streamctl("logs", "coordinator", "-f", f, "-n", "5")
    assert logs.returncode == 0 and logs.stdout.strip()
    url = streamctl("url", "analytics-primary", "-f", f).stdout.strip()
    assert url.startswith("postgresql://streamctl:") and url.split("?")[0].endswith("/analytics_db")
    assert "sslmode=verify-full" in url and "sslrootcert=" in url  # verified TLS, usable as printed
    out = subprocess.run(["psql", url, "-Atc", "select current_database()"], capture_output=True, text=True)
    assert out.stdout.strip() == "analytics_db"
    psql = streamctl("psql", "coordinator", "-f", f, "--", "-Atc", "select 40 + 2")
    assert psql.returncode == 0 and psql.stdout.strip() == "42"
    unknown = streamctl("logs", "nope", "-f", f)
    assert unknown.returncode == 7 and "unknown node 'nope'" in unknown.stderr
    second = streamctl("up", "-f", f)
    assert second.returncode == 0 and "nothing to do" in second.stdout
    streamctl("down", "-f", f)
    stopped = json.loads(streamctl("status", "-f", f, "--json").stdout)["nodes"]
    assert not any(s["healthy"] for s in stopped)


def test_config_error_leaves_existing_cluster_alone(make_cluster) -> None:
    c = make_cluster(replicas=0, fdw=False)
    c.up()
    good = c.path.read_text()
    c.path.write_text(good + "\nunknown_section: 1\n")
    with pytest.raises(ConfigError):
        c.reload()
    c.path.write_text(good)
    c.reload()
    assert all(c.backend.observe(n).state is NodeState.RUNNING for n in c.topology.nodes())


def test_missing_citus_extension_is_a_preflight_error(make_cluster) -> None:
    from streamctl.backends.local.recipes import find_pg_bindir, pg_sharedir

    bindir = find_pg_bindir(None)
    if (pg_sharedir(bindir) / "extension" / "citus.control").exists():
        pytest.skip("the local PostgreSQL has Citus: nothing is missing")
    c = make_cluster(citus=True, workers=1, local={"pg_bindir": str(bindir)})
    proc = streamctl("up", "-f", str(c.path))
    assert proc.returncode == 4, proc.stderr
    assert "the citus extension is not installed" in proc.stderr
    assert "metadata.citus.enabled: false" in proc.stderr  # how to get past it
    assert not c.ctx.store.node_dir("coordinator").exists()  # nothing started


def test_dry_run_plans_and_changes_nothing(make_cluster) -> None:
    c = make_cluster(replicas=1)
    fresh = streamctl("up", "-f", str(c.path), "--dry-run", "--json")
    assert fresh.returncode == 0, fresh.stderr
    plan = json.loads(fresh.stdout)
    assert [(p["node"], p["action"]) for p in plan[:4]] == [
        ("coordinator", "create"), ("analytics-primary", "create"), ("analytics-replica-1", "create"),
        ("redis", "create")]
    assert not c.ctx.store.root.exists()  # no state, no secrets, no data
    c.up()
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        conn.execute("ALTER SUBSCRIPTION streamctl_sub_analytics_replica_1 DISABLE")
    c.backend.kill(c.topology.node("redis"))
    plan = json.loads(streamctl("up", "-f", str(c.path), "--dry-run", "--json").stdout)
    actions = {(p["node"], p["action"]) for p in plan}
    assert ("redis", "start") in actions and ("coordinator", "noop") in actions
    assert c.backend.observe(c.topology.node("redis")).state is NodeState.STOPPED  # still down
    c.up()  # redis running again: the configuration can be inspected
    plan = json.loads(streamctl("up", "-f", str(c.path), "--dry-run", "--json").stdout)
    assert plan == [p for p in plan if p["action"] == "noop"]  # `up` re-enabled the subscription
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        conn.execute("ALTER SUBSCRIPTION streamctl_sub_analytics_replica_1 DISABLE")
    plan = json.loads(streamctl("up", "-f", str(c.path), "--dry-run", "--json").stdout)
    pending = [p for p in plan if p["action"] != "noop"]
    assert pending == [{"node": "analytics-replica-1", "action": "configure",
                        "detail": "enable the subscription"}]
    with c.ctx.pg_connect("analytics-replica-1") as conn:  # the dry run left it disabled
        assert conn.execute("SELECT subenabled FROM pg_subscription").fetchone() == (False,)
