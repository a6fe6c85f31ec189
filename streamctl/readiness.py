"""Readiness as objects (probe + timeout + poll interval), never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from streamctl.config.model import Engine, Node
from streamctl.errors import ReadinessTimeout

Probe = Callable[[], bool]


@dataclass(frozen=True)
class Readiness:
    """Polls `probe` until it returns True; a probe that raises counts as not ready yet."""

    what: str
    probe: Probe
    timeout: float = 90.0
    interval: float = 0.1
    logs: Callable[[], list[str]] | None = None
    hint: str | None = None
    alive: Callable[[], bool] | None = None  # False when the process/container is gone: fail fast
    grace: float = 3.0  # how long `alive` may say False (start-up races) before we give up
    give_up: tuple[type[BaseException], ...] = ()  # probe errors that waiting will not cure: raised at once

    def _fail(self, message: str, last_error: str) -> ReadinessTimeout:
        details = []
        if last_error:
            details.append(f"last probe error: {last_error}")
        if self.logs is not None:
            try:
                lines = self.logs()
            except Exception as exc:  # noqa: BLE001 - logs are best effort in an error path
                lines = [f"(logs unavailable: {exc})"]
            if lines:
                details.append("last log lines:")
                details.extend(f"  {line}" for line in lines)
        return ReadinessTimeout(message, hint=self.hint, details=details)

    def wait(self) -> float:
        start = time.monotonic()
        last_error = ""
        dead_since: float | None = None
        while True:
            try:
                if self.probe():
                    return time.monotonic() - start
            except self.give_up:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            now = time.monotonic()
            elapsed = now - start
            if self.alive is not None and not self.alive():
                dead_since = dead_since if dead_since is not None else now
                if now - dead_since >= self.grace:
                    raise self._fail(f"{self.what} stopped while starting", last_error)
            else:
                dead_since = None
            if elapsed >= self.timeout:
                raise self._fail(f"{self.what} was not ready after {self.timeout:.0f}s", last_error)
            time.sleep(min(self.interval, max(0.0, self.timeout - elapsed)))


def postgres_probe(conninfo: str, query: str = "SELECT 1") -> Probe:
    """Ready when a real query answers, not merely when the port is open."""

    def probe() -> bool:
        import psycopg

        with psycopg.connect(conninfo, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(query).fetchone()  # type: ignore[arg-type]
            return row is not None and bool(row[0])

    return probe


def redis_probe(host: str, port: int, password: str | None, ca: str | None = None) -> Probe:
    def probe() -> bool:
        import redis

        client = redis.Redis(host=host, port=port, password=password, socket_timeout=3,
                             socket_connect_timeout=3, ssl=ca is not None, ssl_ca_certs=ca,
                             ssl_cert_reqs="required", ssl_check_hostname=ca is not None)
        try:
            return bool(client.ping())
        finally:
            client.close()

    return probe


def mongo_probe(uri: str) -> Probe:
    def probe() -> bool:
        from pymongo import MongoClient

        client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                                              socketTimeoutMS=3000)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    return probe


def node_probe(node: Node, host: str, port: int, pg_user: str, secrets: Mapping[str, str],
               ca: str | None = None, fallback: Mapping[str, Sequence[str]] | None = None) -> Probe:
    """The semantic probe of a node, whatever runs it: a real query, PING, or ping; with `ca` (the cluster
    CA's file) over TLS, verifying the server's certificate and name. `fallback`: per secret, the other
    passwords a node may still have while a rotation is pending (tried only when the wanted one is refused)."""
    others = fallback or {}
    if node.engine is Engine.POSTGRES:
        import psycopg

        def conninfo(password: str) -> str:
            params = {"host": host, "port": str(port), "user": pg_user, "dbname": "postgres", "password": password}
            if ca:
                params.update(sslmode="verify-full", sslrootcert=ca)
            return psycopg.conninfo.make_conninfo(**params)

        wanted = secrets["postgres_password"]
        return _any_password([postgres_probe(conninfo(p)) for p in (wanted, *others.get("postgres_password", ()))],
                             lambda exc: "password authentication failed" in str(exc))
    if node.engine is Engine.REDIS:
        import redis

        passwords = (secrets["redis_password"], *others.get("redis_password", ()))
        return _any_password([redis_probe(host, port, p, ca) for p in passwords],
                             lambda exc: isinstance(exc, redis.AuthenticationError))
    # Before `up` creates its users a fresh mongod only admits unauthenticated pings from localhost.
    tls = f"&tls=true&tlsCAFile={quote(ca, safe='/')}" if ca else ""
    return mongo_probe(f"mongodb://{host}:{port}/?directConnection=true{tls}")


def _any_password(probes: list[Probe], refused: Callable[[BaseException], bool]) -> Probe:
    """The first probe whose login is accepted decides; a refused password moves on to the next one."""

    def probe() -> bool:
        for i, one in enumerate(probes):
            try:
                return one()
            except Exception as exc:
                if i == len(probes) - 1 or not refused(exc):
                    raise
        return False

    return probe if len(probes) > 1 else probes[0]
