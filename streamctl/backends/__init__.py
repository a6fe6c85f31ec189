"""Backends: where nodes run. `select_backend` resolves `backend: auto|docker|swarm|local`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.errors import PreflightError

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext


def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no engine answers"
        return False


def select_backend(ctx: ClusterContext, override: str | None = None) -> Backend:
    """The topology's backend unless overridden; `auto`: whatever ran this cluster before, else Docker
    when an engine answers, else local processes."""
    choice = override or ctx.topology.backend
    if choice == "auto":
        recorded = ctx.store.read().get("backend")
        choice = recorded or ("docker" if docker_available() else "local")
    if choice == "local":
        from streamctl.backends.local import LocalBackend

        return LocalBackend(ctx)
    if choice == "docker":
        try:
            from streamctl.backends.docker import DockerBackend
        except ImportError as exc:  # pragma: no cover - the docker SDK is a dependency
            raise PreflightError(f"the Docker backend is unavailable: {exc}") from exc
        return DockerBackend(ctx)
    if choice == "swarm":
        from streamctl.backends.swarm import SwarmBackend

        return SwarmBackend(ctx)
    raise PreflightError(f"unknown backend {choice!r}", hint="use docker, swarm, local or auto")
