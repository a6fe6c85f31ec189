"""Rotating every secret on real engines (local processes): with `rotate-secrets` and by editing the topology;
replication, the FDW, the gateway, `psql` and `verify` work afterwards; a rotation stopped halfway is finished."""

from __future__ import annotations

import json
import stat

import psycopg
import pytest
import redis as redis_lib
import yaml

from streamctl.backends.base import Action
from streamctl.errors import StepError
from streamctl.secrets_rotation import pending, rotate
from tests.support.cli import streamctl
from tests.support.platform import SECRETS, assert_platform_works, refused, up_and_seed

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PG_NODES = ("coordinator", "analytics-primary", "analytics-replica-1")
ROTATED = SECRETS


def test_rotate_secrets_changes_every_secret_and_the_platform_keeps_working(make_cluster) -> None:
    c = make_cluster(replicas=1)
    up_and_seed(c)
    old = dict(c.ctx.secrets)
    old_conninfo = c.ctx.pg_conninfo("coordinator")
    old_gateway = c.ctx.gateway_conninfo("analytics-primary")
    proc = streamctl("rotate-secrets", "-f", str(c.path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["exit_code"] == 0 and report["summary"]["passed"] == len(report["checks"])
    statuses = {s["name"]: s["status"] for s in report["secrets"]}
    assert all(statuses[k] == "rotated" for k in ROTATED)
    assert "mongo_password" not in statuses  # MongoDB is off: not listed when no name is given
    assert {c["status"] for c in report["checks"]} == {"passed"}
    assert {c["check"] for c in report["checks"]} >= {"login.superuser", "replication.streaming", "fdw.query",
                                                     "gateway.login", "redis.login"}
    c.reload()
    new = c.ctx.secrets
    assert all(new[k] != old[k] for k in ROTATED)
    for value in (*old.values(), *new.values()):  # never printed, on stdout or in the progress on stderr
        assert value not in proc.stdout and value not in proc.stderr
    assert refused(old_conninfo) and refused(old_gateway)
    assert pending(c.ctx) == []
    rotations = c.ctx.store.rotations()
    assert rotations["applied"]["postgres_password"] == new["postgres_password"] and not rotations["pending"]
    for f in (c.ctx.store.secrets_file, c.ctx.store.rotations_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    with pytest.raises(redis_lib.AuthenticationError):
        ssl = c.ctx.redis_ssl()
        redis_lib.Redis(host="127.0.0.1", port=c.topology.redis.port, password=old["redis_password"],
                        ssl=bool(ssl), **ssl).ping()
    assert_platform_works(c)


def test_redis_keeps_its_rotated_password_across_a_restart_without_a_recreate(make_cluster) -> None:
    c = make_cluster(replicas=0, analytics=False)
    c.up()
    rotate(c.ctx, c.backend, ["redis_password"])
    c.reload()
    node = c.topology.node(c.topology.redis.name)
    assert node is not None
    assert [s.action for s in c.runner.plan() if s.node.name == node.name] == [Action.NOOP]
    c.backend.stop(node)
    c.up()  # starts it again from its configuration file
    assert c.ctx.redis().ping()


def test_rotate_secrets_names_and_refusals(make_cluster) -> None:
    c = make_cluster(replicas=0, analytics=False, redis=False,
                     secrets={"postgres_password": "fixed-in-the-topology-1"})
    c.up()
    unknown = streamctl("rotate-secrets", "nope_password", "-f", str(c.path))
    assert unknown.returncode == 2 and "unknown secret" in unknown.stderr
    fixed = streamctl("rotate-secrets", "postgres_password", "-f", str(c.path))
    assert fixed.returncode == 2 and "set in the topology" in fixed.stderr
    every = streamctl("rotate-secrets", "-f", str(c.path), "--json")
    assert every.returncode == 0, every.stderr
    statuses = {s["name"]: s["status"] for s in json.loads(every.stdout)["secrets"]}
    assert statuses["postgres_password"] == "fixed" and statuses["gateway_password"] == "rotated"


def test_editing_the_topology_rotates_every_secret_it_carries(make_cluster, monkeypatch) -> None:
    variables = {k: f"T_{k.upper()}" for k in ROTATED}
    for k, var in variables.items():
        monkeypatch.setenv(var, f"first-{k}")
    c = make_cluster(replicas=1, secrets={k: f"${{{var}}}" for k, var in variables.items()})
    up_and_seed(c)
    old_conninfo = c.ctx.pg_conninfo("coordinator")
    for k, var in variables.items():
        monkeypatch.setenv(var, f"second-{k}")
    c.reload()
    preview = [r.to_json() for r in c.runner.preview().rows()]  # the dry run logs in with the applied value
    shown = {r["detail"].split(":")[0] for r in preview if r["node"] == "*" and r["action"] == "configure"}
    assert shown == {f"rotate {k}" for k in ROTATED}, preview
    result = c.up()
    assert [s.action for s in result.node_steps] == [Action.NOOP] * len(result.node_steps)  # nothing restarted
    rotated = {step for _, step, _ in result.config_changes if step.startswith("rotate ")}
    assert rotated == {f"rotate {k}" for k in ROTATED}
    assert refused(old_conninfo)
    assert c.ctx.store.applied_secrets()["postgres_password"] == "second-postgres_password"
    assert_platform_works(c)
    assert c.up().changed is False  # converged: the next `up` has nothing to do


def test_a_rotation_stopped_halfway_is_finished_by_the_next_run(make_cluster) -> None:
    c = make_cluster(replicas=1)
    up_and_seed(c)
    old = c.ctx.secrets["postgres_password"]
    replica = c.topology.node("analytics-replica-1")
    assert replica is not None
    c.backend.stop(replica)  # the last node cannot take the new password
    with pytest.raises(StepError, match="rotating postgres_password stopped halfway"):
        rotate(c.ctx, c.backend, ["postgres_password"])
    c.reload()
    new = c.ctx.secrets["postgres_password"]
    rec = c.ctx.store.rotations()
    assert new != old and rec["applied"]["postgres_password"] == old and rec["pending"]["postgres_password"] == [new]
    assert pending(c.ctx) == ["postgres_password"]
    assert not refused(c.ctx.pg_conninfo("coordinator"))  # done there, with the new one
    c.up()  # starts the replica (which logs in with the old password) and finishes the rotation
    assert pending(c.ctx) == [] and c.ctx.store.applied_secrets()["postgres_password"] == new
    assert c.ctx.secrets["postgres_password"] == new  # the same new value, not a third one
    for node in PG_NODES:
        assert not refused(c.ctx.pg_conninfo(node))
    assert_platform_works(c)


def test_a_stopped_rotation_is_finished_by_rotate_secrets_without_a_new_value(make_cluster) -> None:
    c = make_cluster(replicas=1)
    up_and_seed(c)
    replica = c.topology.node("analytics-replica-1")
    assert replica is not None
    c.backend.stop(replica)
    failed = streamctl("rotate-secrets", "replication_password", "-f", str(c.path), "--json")
    assert failed.returncode == 5 and "rotating replication_password stopped halfway" in failed.stderr
    assert "rotate-secrets replication_password" in failed.stderr  # the hint says how to finish
    c.reload()
    wanted = c.ctx.secrets["replication_password"]
    c.backend.apply(replica, Action.START)
    c.backend.readiness(replica).wait()
    report = rotate(c.ctx, c.backend, ["replication_password"])
    assert [(s.name, s.status) for s in report.secrets] == [("replication_password", "finished")]
    assert report.exit_code == 0, [x.to_json() for x in report.checks]
    assert c.ctx.store.applied_secrets()["replication_password"] == wanted
    assert_platform_works(c)


def test_topology_file_edit_is_picked_up_by_rotate_secrets_too(make_cluster, monkeypatch) -> None:
    monkeypatch.setenv("T_GW", "gateway-one")
    c = make_cluster(replicas=0, secrets={"gateway_password": "${T_GW}"})
    c.up()
    monkeypatch.setenv("T_GW", "gateway-two")
    c.reload()
    report = rotate(c.ctx, c.backend, ["gateway_password"])
    assert [(s.name, s.status) for s in report.secrets] == [("gateway_password", "finished")]
    assert report.exit_code == 0
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM analytics.users").fetchone() == (0,)
    data = yaml.safe_load(c.path.read_text())
    assert data["secrets"]["gateway_password"] == "${T_GW}"  # the file is not rewritten


def test_the_gateway_ops_token_is_rotated_on_request(make_cluster) -> None:
    from streamctl.gateway.guard import ensure_token

    c = make_cluster(replicas=0, analytics=False)
    c.up()
    assert [s.status for s in rotate(c.ctx, c.backend, ["gateway_token"]).secrets] == ["unused"]  # none made yet
    first = ensure_token(c.ctx.store.root)
    report = rotate(c.ctx, c.backend, ["gateway_token"])
    assert [s.status for s in report.secrets] == ["rotated"]
    path = c.ctx.store.root / "gateway-token"
    assert ensure_token(c.ctx.store.root) != first and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.citus
def test_citus_nodes_and_their_authinfo_take_the_rotated_passwords(make_cluster) -> None:
    c = make_cluster(citus=True, workers=1, replicas=0)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) "
                     "VALUES (gen_random_uuid(), 'T', 'movie')")
    old_worker = c.ctx.pg_conninfo("worker-1")
    report = rotate(c.ctx, c.backend, ["postgres_password", "gateway_password"])
    assert report.exit_code == 0, [x.to_json() for x in report.checks]
    changed = [p for s in report.secrets for p in s.changed]
    assert "worker-1: role streamctl_gateway" in changed and "worker-1: role streamctl" in changed
    assert any("Citus authinfo" in p for p in changed)
    assert refused(old_worker)
    c.reload()
    # Distributed queries: the coordinator logs in to the worker with the stored (new) credentials.
    with psycopg.connect(c.ctx.pg_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata").fetchone() == (1,)
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata").fetchone() == (1,)
    assert c.up().changed is False


@pytest.mark.mongo
def test_mongo_root_and_application_passwords_rotate_with_update_user(make_cluster) -> None:
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    c = make_cluster(mongo=True, analytics=False, replicas=0, redis=False)
    c.up()
    old_root = c.ctx.mongo_uri(admin=True)
    report = rotate(c.ctx, c.backend, ["mongo_password", "mongo_app_password"])
    assert [s.status for s in report.secrets] == ["rotated", "rotated"]
    assert report.exit_code == 0, [x.to_json() for x in report.checks]
    with MongoClient(old_root) as client, pytest.raises(OperationFailure):
        client.admin.command("ping")
    c.reload()
    with c.ctx.mongo(admin=True) as client:
        assert client.admin.command("ping")["ok"]
    assert c.up().changed is False


def test_no_secret_reaches_a_server_log_even_when_every_statement_is_logged(make_cluster) -> None:
    c = make_cluster(replicas=1)
    c.up()
    for name in PG_NODES:
        with c.ctx.pg_connect(name) as conn:
            conn.execute("ALTER SYSTEM SET log_statement = 'all'")
            conn.execute("SELECT pg_reload_conf()")
    report = rotate(c.ctx, c.backend)
    assert report.exit_code == 0, [x.to_json() for x in report.checks]
    c.reload()
    values = [c.ctx.secrets[k] for k in ROTATED]
    for name in PG_NODES:
        node = c.topology.node(name)
        assert node is not None
        log = "\n".join(c.backend.logs(node, 100_000))
        assert "statement:" in log  # the setting took: the checks' statements are logged
        assert "ALTER ROLE" not in log and "ALTER SUBSCRIPTION" not in log and "USER MAPPING" not in log
        assert not [v for v in values if v in log], name
