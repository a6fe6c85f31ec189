"""FastAPI dependencies: the open stores and the shared parameter types of the routes."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Request

from streamctl.gateway.stores import Stores


async def get_stores(request: Request) -> Stores:
    """The stores the lifespan opened for this app (async: a sync dependency would cost a thread hop)."""
    stores: Stores = request.app.state.stores
    return stores


StoresDep = Annotated[Stores, Depends(get_stores)]
ContentId = Annotated[UUID, Path(alias="id", description="Content id (UUID).")]
UserId = Annotated[UUID, Path(alias="userId", description="User id (UUID).")]


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for the error statuses a route can answer."""
    from streamctl.gateway.schemas import ErrorBody

    text = {400: "The body is not well-formed JSON", 404: "Not found", 413: "Body too large",
            415: "The body is not JSON",
            422: "Malformed id, parameter or body (`details` names the fields)",
            503: "A store this endpoint needs is disabled in the topology, unreachable, or refuses the "
                 "gateway's credentials (`hint` says what to do)"}
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}
