"""What several test modules do to a running platform and check on it: rows written and awaited where they
replicate, titles for Citus, logins refused or not, awkward secrets, and the platform working end to end."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from streamctl.readiness import Readiness
from tests.support.cli import streamctl
from tests.support.gateway import serve

SECRETS = (  # every secret the topology may set, and `rotate-secrets` rotates (MongoDB off)
    "postgres_password", "replication_password", "fdw_password", "gateway_password", "redis_password")


def awkward(key: str, round_: int) -> str:
    """Every character libpq, redis.conf and URIs quote: a space, ', ", a backslash (one last, too)."""
    return f"it's a \"{key}\" \\ {round_} = x\\"


def add_user(c: Any, node: str = "analytics-primary") -> str:
    uid = str(uuid.uuid4())
    with c.ctx.pg_connect(node) as conn:
        conn.execute("INSERT INTO users (user_id, username, email) VALUES (%s, %s, %s)",
                     (uid, f"u{uid[:8]}", f"{uid[:8]}@example.test"))
    return uid


def wait_for_row(c: Any, node: str, query: str, params: tuple[Any, ...]) -> Any:
    """The first row `query` finds on `node` (a readiness wait of up to 30 s, for replication)."""
    found: list[Any] = []

    def probe() -> bool:
        with c.ctx.pg_connect(node) as conn:
            row = conn.execute(query, params).fetchone()
        if row:
            found.append(row)
        return row is not None

    Readiness(f"row on {node}", probe, timeout=30, interval=0.1).wait()
    return found[-1]


def insert_titles(c: Any, rows: int) -> None:
    """`rows` titles on the coordinator, each with one of two genres."""
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) SELECT "
                     f"gen_random_uuid(), 'title ' || i, 'movie' FROM generate_series(1, {rows}) i")
        conn.execute("INSERT INTO genres VALUES (1, 'drama'), (2, 'comedy')")
        conn.execute("INSERT INTO content_genres SELECT content_id, 1 + (random() < 0.5)::int "
                     "FROM content_metadata")


def refused(conninfo: str) -> bool:
    """True when PostgreSQL refuses the login for its password (any other failure is an error)."""
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
        return True
    return False


def up_and_seed(c: Any) -> None:
    """A small seeded platform: `verify` judges seeded stores (trending keys in Redis and so on)."""
    from streamctl.seed.run import SeedOptions, seed

    c.up()
    seed(c.ctx, SeedOptions(scale=0.002, seed=3))


def _user_listed(httpx: Any, url: str, uid: str) -> bool:
    """Whether the gateway's user ids (read through the FDW with the gateway's role) list `uid`, page by page."""
    cursor: str | None = None
    while True:
        page = httpx.get(f"{url}/api/v1/content/users/ids", params={"limit": 500, **({"cursor": cursor} if cursor
                                                                                    else {})}, timeout=30)
        assert page.status_code == 200, page.text
        body = page.json()
        if uid in body["items"]:
            return True
        cursor = body.get("next_cursor")
        if not cursor:
            return False


def assert_platform_works(c: Any) -> None:
    """New rows reach the replica, the FDW and the gateway's role read, Redis answers, `psql` and `verify` pass."""
    import httpx

    from streamctl.gateway.app import create_app

    c.reload()
    uid = add_user(c)
    assert wait_for_row(c, "analytics-replica-1", "SELECT username FROM users WHERE user_id = %s", (uid,))
    with psycopg.connect(c.ctx.pg_conninfo("coordinator"), autocommit=True) as conn:  # no fallback: new password
        assert conn.execute("SELECT username FROM analytics.users WHERE user_id = %s", (uid,)).fetchone()
    with psycopg.connect(c.ctx.gateway_conninfo("coordinator"), autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM analytics.users WHERE user_id = %s", (uid,)).fetchone()
    client = c.ctx.redis()
    assert client.ping()
    client.close()
    with serve(create_app(c.ctx)) as url:
        assert _user_listed(httpx, url, uid)  # in id order: the new user may be on any page
        health = httpx.get(f"{url}/health", timeout=30)
        assert health.status_code == 200, health.text
    psql = streamctl("psql", "analytics-replica-1", "-f", str(c.path), "--", "-tAc", "SELECT count(*) FROM users")
    assert psql.returncode == 0, psql.stderr
    verify = streamctl("verify", "-f", str(c.path), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
