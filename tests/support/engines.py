"""Which engines this machine has. A test marked with an engine's name (`@pytest.mark.citus`) skips with the
reason when that engine is absent; STREAMCTL_REQUIRE (comma-separated engines, set by CI) turns such a skip
into a failure, so CI can never silently skip what it can run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import NoReturn

import pytest

from streamctl.backends import docker_available
from streamctl.backends.local.recipes import find_pg_bindir, pg_sharedir
from streamctl.errors import PreflightError


def citus_bindir() -> str | None:
    """A PostgreSQL bin directory with Citus: STREAMCTL_TEST_PG_BINDIR, else the one on PATH."""
    return os.environ.get("STREAMCTL_TEST_PG_BINDIR") or None


def _postgres() -> str | None:
    try:
        find_pg_bindir(None)
        return None
    except PreflightError:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH"


def _citus() -> str | None:
    try:
        bindir = find_pg_bindir(citus_bindir())
    except PreflightError:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH"
    sharedir = pg_sharedir(bindir)
    if not (sharedir / "extension" / "citus.control").exists():
        return (f"the Citus extension is not installed in the PostgreSQL at {bindir} (no citus.control in "
                f"{sharedir}/extension); set STREAMCTL_TEST_PG_BINDIR to a Citus-enabled bin directory")
    return None


def _mongo() -> str | None:
    """A server the Mongo tests can use: STREAMCTL_TEST_MONGO_URI when it answers, else mongod on PATH."""
    from tests.support.mongo import ENV_URI, uri_unreachable

    if os.environ.get(ENV_URI):
        return uri_unreachable(os.environ[ENV_URI])
    if shutil.which("mongod"):
        return None
    return f"no mongod on PATH and {ENV_URI} is not set"


def _redis() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not on PATH"


def _docker() -> str | None:
    return None if docker_available() else "no Docker engine answers (start dockerd)"


def _chromium() -> str | None:
    return None if (shutil.which("chromium") or shutil.which("chromium-browser")) else "chromium is not installed"


def _prometheus() -> str | None:
    return None if shutil.which("prometheus") else "prometheus is not installed (apt-get install prometheus)"


def _etcd() -> str | None:
    return None if shutil.which("etcd") else "etcd is not installed (apt-get install etcd-server)"


CHECKS: dict[str, Callable[[], str | None]] = {
    "postgres": _postgres, "redis": _redis, "docker": _docker, "citus": _citus, "mongo": _mongo,
    "chromium": _chromium, "prometheus": _prometheus, "etcd": _etcd}
_missing: dict[str, str | None] = {}


def missing(engine: str) -> str | None:
    """Why `engine` cannot be used here, or None when it can (asked once per session)."""
    if engine not in _missing:
        _missing[engine] = CHECKS[engine]()
    return _missing[engine]


def required(engine: str) -> bool:
    """STREAMCTL_REQUIRE lists `engine`: a test needing it fails rather than skips."""
    return engine in {e.strip() for e in os.environ.get("STREAMCTL_REQUIRE", "").split(",") if e.strip()}


def skip_or_fail(engine: str, reason: str) -> NoReturn:
    if required(engine):
        pytest.fail(f"STREAMCTL_REQUIRE lists {engine}, but {reason}")
    pytest.skip(reason)


def require(*engines: str) -> None:
    """Skip (or fail, see STREAMCTL_REQUIRE) unless every one of `engines` is here: what the markers do,
    for a module-scoped fixture that makes a cluster before any test runs."""
    for engine in engines:
        reason = missing(engine)
        if reason is not None:
            skip_or_fail(engine, reason)
