"""Docker SDK exceptions translated where they enter, so users see what failed and not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streamctl.errors import BackendError, PreflightError

UNREACHABLE_HINT = ("start Docker (e.g. `sudo systemctl start docker`, or Docker Desktop), or run the "
                    "cluster as local processes with `--backend local`")


@contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Turn the SDK's (and its HTTP layer's) errors into a BackendError saying what was attempted."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        yield
    except (DockerException, RequestException) as exc:
        raise BackendError(f"docker: {what} failed: {short_error(exc)}") from exc


def short_error(exc: BaseException) -> str:
    """The engine's own explanation when there is one, first line only."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect() -> Any:
    """The Docker SDK client of DOCKER_HOST (or the local socket); an unreachable engine is a PreflightError."""
    import docker

    try:
        # One pooled connection per node thread, so big topologies do not exhaust the pool.
        client = docker.from_env(timeout=120, max_pool_size=64)
        client.ping()
    except Exception as exc:  # DockerException, or requests' errors when the socket is absent or refuses
        raise PreflightError(f"cannot reach the Docker engine: {short_error(exc)}", hint=UNREACHABLE_HINT) from exc
    return client
