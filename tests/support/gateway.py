"""A real local cluster with a little known data, shared by the gateway's test modules; the gateway's app
served in a thread, and `streamctl gateway` run as a process.

The data is inserted here with SQL and Redis commands (not with `seed`), so each assertion can name
exactly what it expects.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from streamctl.readiness import Readiness
from tests.support.cli import start
from tests.support.cluster import LocalCluster, running
from tests.support.ports import free_port

GENRES = [(1, "Drama"), (2, "Comedy"), (3, "Documentary")]


@dataclass
class Dataset:
    """What the fixture inserted, for the tests to compare against."""

    content: dict[uuid.UUID, str] = field(default_factory=dict)  # id -> title
    genres: dict[uuid.UUID, list[str]] = field(default_factory=dict)
    users: list[uuid.UUID] = field(default_factory=list)
    history: dict[uuid.UUID, list[tuple[int, uuid.UUID, datetime, int]]] = field(default_factory=dict)
    no_history_user: uuid.UUID | None = None


def insert_dataset(c: LocalCluster, titles: int = 5) -> Dataset:
    """Titles (some with genres), two users with watch history, one without; waits for the replica."""
    ds = Dataset()
    ctx = c.ctx
    t = ctx.topology
    with ctx.pg_connect(t.metadata.coordinator.name, t.metadata.database) as conn:
        conn.execute("INSERT INTO genres (genre_id, name) VALUES (%s, %s), (%s, %s), (%s, %s) "
                     "ON CONFLICT DO NOTHING", [x for g in GENRES for x in g])
        for i in range(titles):
            cid = uuid.uuid4()
            title = f"Title {i} «{cid.hex[:6]}»"
            conn.execute("INSERT INTO content_metadata (content_id, title, content_type, release_date, "
                         "duration_minutes, rating, summary) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (cid, title, ("movie", "series", "documentary")[i % 3], f"20{10 + i}-01-0{1 + i % 9}",
                          90 + i, 7.5, "a summary"))
            names = [g for g in GENRES if i % 2 == 0 or g[0] == 2][: 1 + i % 3]
            for gid, _ in names:
                conn.execute("INSERT INTO content_genres (content_id, genre_id) VALUES (%s, %s)", (cid, gid))
            ds.content[cid] = title
            ds.genres[cid] = sorted(n for _, n in names)
    ids = list(ds.content)
    now = datetime.now(UTC).replace(microsecond=0)
    primary = t.analytics.primary.name if t.analytics.primary else "analytics-primary"
    with ctx.pg_connect(primary, t.analytics.database) as conn:
        for n in range(3):
            uid = uuid.uuid4()
            conn.execute("INSERT INTO users (user_id, username, email) VALUES (%s, %s, %s)",
                         (uid, f"user{n}-{uid.hex[:6]}", f"{uid.hex[:10]}@example.test"))
            ds.users.append(uid)
        ds.no_history_user = ds.users[2]
        for u, uid in enumerate(ds.users[:2]):
            rows = []
            for k in range(4 + u):  # 4 and 5 entries; two share a timestamp to exercise the tie-break
                at = now - timedelta(hours=k if k != 3 else 2)
                cid = ids[(k + u) % len(ids)]
                hid = conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, "
                                   "duration_watched_seconds, last_position_seconds) VALUES (%s, %s, %s, %s, %s) "
                                   "RETURNING history_id", (uid, cid, at, 600 + 60 * k, 10 * k)).fetchone()
                assert hid is not None
                rows.append((hid[0], cid, at, 600 + 60 * k))
            ds.history[uid] = rows
    wait_for_replicas(c, len(ds.users))
    return ds


def wait_for_replicas(c: LocalCluster, users: int, timeout: float = 60.0) -> None:
    """Readiness wait (not an assertion on time): replicas have applied the inserted users."""
    t = c.ctx.topology
    deadline = time.monotonic() + timeout
    for replica in t.analytics.replicas:
        while True:
            with c.ctx.pg_connect(replica.name, t.analytics.database) as conn:
                row = conn.execute("SELECT count(*) FROM users").fetchone()
            if row is not None and row[0] >= users:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replica.name} did not receive the test users within {timeout}s")
            time.sleep(0.1)


def module_cluster(cluster: str, **kwargs: Any) -> Iterator[tuple[LocalCluster, Dataset]]:
    """Body of a module-scoped fixture: one cluster and dataset for all tests of a module."""
    with running(cluster=cluster, **kwargs) as c:
        yield c, insert_dataset(c)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under a real uvicorn server in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="gateway-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # readiness wait for the listening socket
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def served_cluster(cluster: str, **kwargs: Any) -> Iterator[tuple[str, Dataset]]:
    """Body of a module-scoped fixture: a cluster with its dataset, served by a real uvicorn; yields
    (base URL, dataset)."""
    from streamctl.gateway.app import create_app

    platforms = module_cluster(cluster, **kwargs)
    local, data = next(platforms)
    try:
        with serve(create_app(local.ctx)) as url:
            yield url, data
    finally:
        platforms.close()


# -- `streamctl gateway` as a user runs it (a host process) ----------------------------------------------
def gateway(c: LocalCluster, host: str, *extra: str, port: int | None = None) -> tuple[subprocess.Popen[str], int]:
    """`streamctl gateway -f TOPOLOGY --host HOST --port PORT EXTRA` started (PORT a free one unless given)."""
    port = port or free_port()
    proc = start("gateway", "-f", str(c.path), "--host", host, "--port", str(port), *extra, stdout=subprocess.DEVNULL)
    return proc, port


def wait_listening(proc: subprocess.Popen[str], url: str, verify: Any = True) -> None:
    def probe() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the gateway exited: {proc.stderr.read() if proc.stderr else ''}")
        return httpx.get(url, verify=verify, timeout=2).status_code > 0

    Readiness(f"gateway at {url}", probe, timeout=60, interval=0.2, give_up=(AssertionError,)).wait()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@contextlib.contextmanager
def gateway_serving(c: LocalCluster, host: str, *extra: str, port: int | None = None,
                    verify: Any = True) -> Iterator[str]:
    """`streamctl gateway` as a user runs it, once it answers; yields its base URL (https with --tls, on
    127.0.0.1 when it listens on every address), stopped afterwards. `verify`: httpx's, for --tls."""
    proc, port = gateway(c, host, *extra, port=port)
    base = f"{'https' if '--tls' in extra else 'http'}://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    try:
        wait_listening(proc, f"{base}/openapi.json", verify)
        yield base
    finally:
        stop(proc)
