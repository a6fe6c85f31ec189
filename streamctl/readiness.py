"""Readiness as objects (probe + timeout + poll interval), never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from streamctl.config.model import Engine, Node
from streamctl.engines import mongo, postgres, redis
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


def node_probe(node: Node, host: str, port: int, pg_user: str, secrets: Mapping[str, str],
               ca: str | None = None, fallback: Mapping[str, Sequence[str]] | None = None) -> Probe:
    """The semantic probe of a node, whatever runs it: a real query, PING, or ping; with `ca` (the cluster
    CA's file) over TLS, verifying the server's certificate and name. `fallback`: per secret, the other
    passwords a node may still have while a rotation is pending (tried only when the wanted one is refused)."""
    others = fallback or {}
    if node.engine is Engine.POSTGRES:
        tls = postgres.verify_full(ca) if ca else {}

        def dsn(password: str) -> str:
            return postgres.conninfo(host=host, port=port, user=pg_user, dbname="postgres", password=password, **tls)

        wanted = secrets["postgres_password"]
        return _any_password([postgres.probe(dsn(p)) for p in (wanted, *others.get("postgres_password", ()))],
                             lambda exc: "password authentication failed" in str(exc))
    if node.engine is Engine.REDIS:
        import redis as redis_lib

        passwords = (secrets["redis_password"], *others.get("redis_password", ()))
        return _any_password([redis.probe(host, port, p, ca) for p in passwords],
                             lambda exc: isinstance(exc, redis_lib.AuthenticationError))
    # Before `up` creates its users a fresh mongod only admits unauthenticated pings from localhost.
    return mongo.probe(mongo.uri(host, port, ca_file=ca))


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
