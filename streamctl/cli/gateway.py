"""`gateway`: serve the platform's REST API and ops dashboard over the cluster's stores (uvicorn)."""

from __future__ import annotations

import os
import shutil
from typing import Annotated, Literal

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, StateDirOpt, load_context
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError, RefusedError

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


def gateway(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
            host: Annotated[str | None, typer.Option(help="Address to listen on (default: gateway.host, "
                                                      "127.0.0.1).")] = None,
            port: Annotated[int | None, typer.Option(help="Port (default: gateway.port, 3000).",
                                                     min=1, max=65535)] = None,
            workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
            tls: Annotated[bool | None, typer.Option("--tls/--no-tls", help="Serve HTTPS with a certificate "
                                                     "from the cluster CA (default: gateway.tls).")] = None,
            log_level: Annotated[LogLevel, typer.Option(
                help="uvicorn log level: critical, error, warning, info, debug or trace.")] = "warning") -> None:
    """Serve the REST API and the ops dashboard. It reads the cluster's stores; routes:
    /api/v1/content, /health, API docs (/api-docs) and the dashboard (/).

    Listening beyond loopback (anything but 127.0.0.1, ::1, localhost), every route except those in
    gateway.public_routes requires the token kept in the state directory's gateway-token file
    (Authorization: Bearer); an empty or unreadable token file is an error.

    Example: streamctl gateway -f topology.yaml --port 3000 --workers 2 --tls
    """
    import uvicorn

    from streamctl.gateway.app import ENV_GUARD, ENV_STATE_DIR, ENV_TOPOLOGY, app_from_env, create_app
    from streamctl.gateway.guard import ensure_token, needs_token
    from streamctl.gateway.metrics import MULTIPROC_ENV

    ctx = load_context(file, state_dir)
    spec = ctx.topology.gateway
    if not spec.enabled:
        raise RefusedError("the gateway is disabled in the topology (gateway.enabled: false)",
                           hint="set gateway.enabled: true")
    if not ctx.store.exists() and not all(n.is_external for n in ctx.topology.nodes()):
        raise NotFoundError(f"no state for cluster {ctx.topology.cluster}", hint="run `streamctl up` first")
    host, port = host or spec.host, port or spec.port
    https = spec.tls if tls is None else tls
    certfile, keyfile = gateway_tls_files(ctx, host) if https else (None, None)
    token = ensure_token(ctx.store.root) if needs_token(host) else None
    scheme = "https" if https else "http"
    render.line(f"gateway for {ctx.topology.cluster} on {scheme}://{host}:{port}/ (docs /api-docs, "
                f"{workers} worker{'s' if workers > 1 else ''}); Ctrl-C stops it", "bold green")
    if token:
        public = ", ".join(spec.public_routes) or "none"
        render.line(f"every route needs the token in {ctx.store.gateway_token_file} (public routes: {public})")
    if workers == 1:
        uvicorn.run(create_app(ctx, ops_token=token), host=host, port=port, log_level=log_level,
                    ssl_certfile=certfile, ssl_keyfile=keyfile)
        return
    os.environ[ENV_GUARD] = "1" if token else "0"
    # The HTTP metrics of every worker add up in files here (prometheus_client's multiprocess mode).
    metrics_dir = ctx.store.root / "gateway-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    # Several processes: each worker imports the factory and rebuilds the context from the environment.
    os.environ[ENV_TOPOLOGY] = str(file.absolute())
    if state_dir:
        os.environ[ENV_STATE_DIR] = str(state_dir)
    uvicorn.run(f"{app_from_env.__module__}:{app_from_env.__name__}", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, ssl_certfile=certfile, ssl_keyfile=keyfile)


def gateway_tls_files(ctx: ClusterContext, host: str) -> tuple[str, str]:
    """uvicorn's ssl_certfile/ssl_keyfile: the gateway's certificate for `host`, issued by the cluster CA."""
    from streamctl.tls.material import GATEWAY, gateway_names

    ctx.tls.ensure(GATEWAY, gateway_names(ctx.topology, host))
    return str(ctx.tls.deployed_cert(GATEWAY)), str(ctx.tls.deployed_key(GATEWAY))
