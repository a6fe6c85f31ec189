"""The gateway application: `create_app(ctx)` builds it; the lifespan opens and closes the store pools.

`app_from_env()` is the factory uvicorn imports when it runs several worker processes: each worker
rebuilds the cluster context from STREAMCTL_TOPOLOGY / STREAMCTL_STATE_DIR.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from streamctl import __version__
from streamctl.context import ClusterContext
from streamctl.gateway import metrics
from streamctl.gateway.errors import install_error_handlers
from streamctl.gateway.guard import OpsTokenGuard, ensure_token
from streamctl.gateway.metrics import Background, Instruments, RequestMetrics
from streamctl.gateway.middleware import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from streamctl.gateway.routers import content, dashboard, health, reviews, trending, users
from streamctl.gateway.stores import PoolSizes, Stores

ENV_TOPOLOGY = "STREAMCTL_TOPOLOGY"
ENV_STATE_DIR = "STREAMCTL_STATE_DIR"
ENV_GUARD = "STREAMCTL_GATEWAY_GUARD"  # "1": the workers require the token (listening beyond loopback)

DESCRIPTION = """The streaming platform's REST API over the stores `streamctl up` provisioned:
the content catalogue (Citus or PostgreSQL), users and watch history (analytics PostgreSQL, read through
postgres_fdw), reviews (MongoDB) and real-time counters (Redis).

Every error answers `{"error": {"code": ..., "message": ...}}`. An endpoint whose store is disabled in
the topology, or unreachable, answers 503 naming the store; the other endpoints keep working."""


def create_app(ctx: ClusterContext, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               pool_sizes: PoolSizes | None = None, ops_token: str | None = None) -> FastAPI:
    """The FastAPI app serving the cluster `ctx` describes; pools open when the app starts. With
    `ops_token`, every route but gateway.public_routes requires it (see guard.py)."""

    background = Background(ctx, ctx.topology.gateway.metrics_interval)
    instruments = Instruments(ctx, background)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.instruments, app.state.background = instruments, background
        background.start()
        app.state.stores = await Stores.open(ctx, pool_sizes)
        # Everything built so far lives as long as the app: move it out of the collector's sight, so
        # full collections under load do not walk it (they are what makes the tail latency).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            background.stop()
            await app.state.stores.close()

    app = FastAPI(title=f"streamctl gateway ({ctx.topology.cluster})", version=__version__,
                  description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    install_error_handlers(app)
    # The content router goes first: its GET /{id} is the hot path, and routes are matched in order.
    # Inside it /ids precedes /{id}; the other routers' fixed paths have two or more segments.
    for module in (content, trending, users, reviews, health, dashboard, metrics):
        app.include_router(module.router)
    dashboard.mount_static(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    if ops_token is not None:  # an empty token is refused by the guard itself, never taken as "no guard"
        app.add_middleware(OpsTokenGuard, token=ops_token, public_routes=ctx.topology.gateway.public_routes)
    app.add_middleware(RequestMetrics, instruments=instruments)  # outermost: a 401 is counted too
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory streamctl.gateway.app:app_from_env` (one call per worker)."""
    from streamctl.config.load import load_topology

    path = Path(os.environ.get(ENV_TOPOLOGY, "topology.yaml")).absolute()
    ctx = ClusterContext.build(load_topology(path), path, os.environ.get(ENV_STATE_DIR) or None)
    token = ensure_token(ctx.store.root) if os.environ.get(ENV_GUARD) == "1" else None
    return create_app(ctx, ops_token=token)
