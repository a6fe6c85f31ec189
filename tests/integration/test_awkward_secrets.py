"""Secrets with a space, a single quote, a double quote and a backslash work everywhere (local processes, real
PostgreSQL with Citus, Redis): `up`, replication, the FDW, Citus's node-to-node logins (authinfo), Redis (its
redis.conf), the gateway's role, `verify`; and again after they are changed to other such values."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from streamctl.names import DISTRIBUTED_TABLES, GATEWAY_USER, subscription_name
from tests.support.platform import SECRETS, assert_platform_works, awkward, up_and_seed

pytestmark = [pytest.mark.citus, pytest.mark.redis]

def assert_secrets_reach_every_place(c: Any) -> None:
    """The catalogues hold the secrets as libpq reads them back, and the logins they are for succeed."""
    secrets = c.ctx.secrets
    with c.ctx.pg_connect("coordinator") as conn:
        rows = dict(conn.execute("SELECT rolename, authinfo FROM pg_dist_authinfo WHERE nodeid = 0").fetchall())
    assert conninfo_to_dict(rows[c.topology.pg_user])["password"] == secrets["postgres_password"]
    assert conninfo_to_dict(rows[GATEWAY_USER])["password"] == secrets["gateway_password"]
    with c.ctx.pg_connect("analytics-replica-1") as conn:
        row = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s",
                           (subscription_name("analytics-replica-1"),)).fetchone()
    assert row is not None and conninfo_to_dict(row[0])["password"] == secrets["replication_password"]
    # The gateway's role reads a distributed table: the coordinator logs in to the worker with its authinfo.
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator", c.topology.metadata.database)) as conn:
        conn.execute("SET citus.force_max_query_parallelization TO on")  # a connection to every worker
        assert conn.execute(f"SELECT count(*) FROM {DISTRIBUTED_TABLES[0]}").fetchone() is not None


def assert_redis_restarts_with_its_password(c: Any) -> None:
    """Redis stopped and started by `up` reads its password from redis.conf (written by streamctl)."""
    node = c.topology.node("redis")
    assert node is not None
    c.backend.stop(node)
    c.up()
    client = c.ctx.redis()
    assert client.ping()
    client.close()


def test_secrets_with_spaces_quotes_and_backslashes_work_everywhere(make_cluster, monkeypatch) -> None:
    for key in SECRETS:
        monkeypatch.setenv(f"T_{key.upper()}", awkward(key, 1))
    c = make_cluster(citus=True, workers=1, replicas=1,
                     secrets={k: f"${{T_{k.upper()}}}" for k in SECRETS})
    up_and_seed(c)
    assert {k: c.ctx.secrets[k] for k in SECRETS} == {k: awkward(k, 1) for k in SECRETS}
    assert_secrets_reach_every_place(c)
    assert_platform_works(c)  # replication, FDW, the gateway's role and app, Redis, psql, verify
    assert_redis_restarts_with_its_password(c)

    # Changed to other awkward values: the rotation rewrites each place (ALTER SUBSCRIPTION, authinfo, mappings).
    for key in SECRETS:
        monkeypatch.setenv(f"T_{key.upper()}", awkward(key, 2))
    c.reload()
    c.up()
    assert c.ctx.store.applied_secrets()["replication_password"] == awkward("replication_password", 2)
    assert_secrets_reach_every_place(c)
    assert_platform_works(c)
    assert_redis_restarts_with_its_password(c)  # the rotated password was written to redis.conf too
