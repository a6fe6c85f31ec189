"""The API's errors: one JSON body shape for every failure, and never any internal text in it.

Every error answers `{"error": {"code": ..., "message": ...}}` (422 adds `details` with the fields).
Exceptions raised by drivers are translated where they enter (stores.py) or land in the catch-all
handler, which logs them and answers a bare 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("streamctl.gateway")
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class ApiError(Exception):
    """An error with a status, a stable machine-readable code and a message meant for API clients."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class NotFound(ApiError):
    def __init__(self, what: str) -> None:
        super().__init__(404, "not_found", f"{what} not found")


class StoreUnavailable(ApiError):
    """A store is disabled in the topology or not reachable: its endpoints answer 503."""

    def __init__(self, store: str, reason: str, hint: str | None = None) -> None:
        super().__init__(503, "store_unavailable", f"the {store} store is unavailable: {reason}")
        self.store = store
        self.hint = hint


# pymongo raises OperationFailure (not ConnectionFailure) when the server refuses the credentials:
# code 18 AuthenticationFailed (wrong password, or the application user does not exist, e.g. after an
# `up` that stopped before the Mongo steps), 13 Unauthorized (the user lacks a privilege).
MONGO_AUTH_CODES = {18: ("authentication failed",
                         "run `streamctl up` to create the application user or apply a changed password"),
                    13: ("not authorized", "run `streamctl up` to restore the gateway's role")}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Location and message only: echoing the input back could reflect a large or hostile body.
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure the same JSON body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable) and exc.__cause__ is not None:
            log.warning("%s: %s", exc.message, exc.__cause__)
        return JSONResponse(error_body(exc.code, exc.message, hint=getattr(exc, "hint", None)),
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", "the request is not valid",
                                       details=_validation_details(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(getattr(exc, "headers", None) or {})
        allowed = allowed_methods(request) if exc.status_code == 405 else None
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        unavailable = as_store_unavailable(exc)
        if unavailable is not None:
            log.warning("%s store error on %s: %s", unavailable.store, request.url.path, exc)
            return JSONResponse(error_body(unavailable.code, unavailable.message, hint=unavailable.hint),
                                status_code=503)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


def allowed_methods(request: Request) -> list[str] | None:
    """Every method the API document lists for this path (None: a path outside the document).

    The router's own 405 names only the first route that matched the path (GET /{id}/reviews), not
    its siblings on the same path (POST)."""
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = []
        for path, operations in request.app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(path)) + "$")
            methods = {m.upper() for m in operations if m in _HTTP_METHODS}
            if "GET" in methods:
                methods.add("HEAD")
            table.append((pattern, sorted(methods)))
        request.app.state.allow_table = table
    path = request.url.path
    found = [methods for pattern, methods in table if pattern.match(path)]
    return sorted({m for methods in found for m in methods}) if found else None


def as_store_unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The 503 a driver's exception stands for: its store is down or refuses our credentials."""
    try:
        from pymongo.errors import OperationFailure
        if isinstance(exc, OperationFailure) and exc.code in MONGO_AUTH_CODES:
            reason, hint = MONGO_AUTH_CODES[exc.code]
            return StoreUnavailable("mongo", reason, hint)
    except ImportError:  # pragma: no cover
        pass
    store = store_of(exc)
    return StoreUnavailable(store, "not reachable") if store is not None else None


def store_of(exc: BaseException) -> str | None:
    """The store a driver's exception comes from, if it is a connection-level or credential failure."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout
        if isinstance(exc, RedisConnectionError | RedisTimeout):
            return "redis"
    except ImportError:  # pragma: no cover
        pass
    try:
        from pymongo.errors import ConnectionFailure, OperationFailure
        if isinstance(exc, ConnectionFailure) or (isinstance(exc, OperationFailure)
                                                  and exc.code in MONGO_AUTH_CODES):
            return "mongo"
    except ImportError:  # pragma: no cover
        pass
    return None
