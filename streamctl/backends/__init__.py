"""Backends: where nodes run. `select_backend` resolves `backend: auto|docker|swarm|local|external`, per node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.errors import PreflightError
from streamctl.events import Progress

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext

BACKENDS = ("auto", "docker", "swarm", "local", "external")


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


def _resolve(ctx: ClusterContext, choice: str) -> str:
    """`auto`: whatever provisioned this cluster before, else Docker when an engine answers, else local."""
    if choice != "auto":
        return choice
    recorded = ctx.store.read().get("backend")
    if recorded in ("docker", "swarm", "local"):
        return str(recorded)
    return "docker" if docker_available() else "local"


def _make(ctx: ClusterContext, choice: str, progress: Progress | None = None) -> Backend:
    if choice == "local":
        from streamctl.backends.local.backend import LocalBackend

        return LocalBackend(ctx)
    if choice == "docker":
        try:
            from streamctl.backends.docker.backend import DockerBackend
        except ImportError as exc:  # pragma: no cover - the docker SDK is a dependency
            raise PreflightError(f"the Docker backend is unavailable: {exc}") from exc
        return DockerBackend(ctx, progress)
    if choice == "swarm":
        from streamctl.backends.swarm.backend import SwarmBackend

        return SwarmBackend(ctx, progress)
    if choice == "external":
        from streamctl.backends.external import ExternalBackend

        return ExternalBackend(ctx)
    raise PreflightError(f"unknown backend {choice!r}", hint=f"use {', '.join(BACKENDS)}")


def select_backend(ctx: ClusterContext, progress: Progress | None = None) -> Backend:
    """The topology's backend (a node's own `backend:` wins); a cluster whose nodes name different backends
    gets one MixedBackend dispatching per node. `progress` hears about long steps (image pulls). The
    topology is only read: `--backend` is applied when the file is loaded (`load_topology(backend=)`)."""
    nodes = ctx.topology.nodes()
    resolved: dict[str, str] = {}
    choice: dict[str, str] = {}
    for node in nodes:
        wanted = node.backend or ctx.topology.backend
        if wanted not in resolved:
            resolved[wanted] = _resolve(ctx, wanted)
        choice[node.name] = resolved[wanted]
    names = sorted(set(choice.values())) or [_resolve(ctx, ctx.topology.backend)]
    if len(names) == 1:
        return _make(ctx, names[0], progress)
    from streamctl.backends.mixed import MixedBackend

    provisioning = next((n for n in names if n != "external"), names[0])
    return MixedBackend({n: _make(ctx, n, progress) for n in names}, choice, provisioning)
