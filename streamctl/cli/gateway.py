"""`gateway`: serve the platform's REST API and ops dashboard over the cluster's stores (uvicorn)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, StateDirOpt, load_context
from streamctl.errors import NotFoundError, RefusedError


def gateway(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
            host: Annotated[str | None, typer.Option(help="Address to listen on (default: gateway.host, "
                                                      "127.0.0.1).")] = None,
            port: Annotated[int | None, typer.Option(help="Port (default: gateway.port, 3000).",
                                                     min=1, max=65535)] = None,
            workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
            log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning") -> None:
    """Serve the REST API (/api/v1/content), /health, API docs (/api-docs) and the dashboard (/).

    Example: streamctl gateway -f topology.yaml --port 3000 --workers 2
    """
    import uvicorn

    from streamctl.gateway.app import ENV_STATE_DIR, ENV_TOPOLOGY, app_from_env, create_app

    ctx = load_context(file, state_dir)
    spec = ctx.topology.gateway
    if not spec.enabled:
        raise RefusedError("the gateway is disabled in the topology (gateway.enabled: false)",
                           hint="set gateway.enabled: true")
    if not ctx.store.exists() and not all(n.is_external for n in ctx.topology.nodes()):
        raise NotFoundError(f"no state for cluster {ctx.topology.cluster}", hint="run `streamctl up` first")
    host, port = host or spec.host, port or spec.port
    render.line(f"gateway for {ctx.topology.cluster} on http://{host}:{port}/ (docs /api-docs, "
                f"{workers} worker{'s' if workers > 1 else ''}); Ctrl-C stops it", "bold green")
    if workers == 1:
        uvicorn.run(create_app(ctx), host=host, port=port, log_level=log_level)
        return
    # Several processes: each worker imports the factory and rebuilds the context from the environment.
    os.environ[ENV_TOPOLOGY] = str(file.absolute())
    if state_dir:
        os.environ[ENV_STATE_DIR] = str(state_dir)
    uvicorn.run(f"{app_from_env.__module__}:{app_from_env.__name__}", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)
