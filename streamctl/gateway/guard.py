"""The ops token: when the gateway listens beyond loopback, /health, /api/v1/ops/* and the dashboard need it.

The token is generated once into the state directory (`gateway-token`, mode 0600) and never printed; the
public content API stays open. Clients send `Authorization: Bearer TOKEN`; a browser opens the dashboard
once as `/?token=TOKEN`, which sets an HttpOnly cookie for the dashboard's own requests.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
TOKEN_FILE = "gateway-token"
COOKIE = "streamctl_ops_token"
PROTECTED_PREFIXES = ("/health", "/api/v1/ops/")


def needs_token(host: str) -> bool:
    """Anything but the loopback address itself (a wildcard, a LAN address, another 127.x) needs the token."""
    return host not in LOOPBACK


def ensure_token(state_root: Path) -> str:
    """The gateway's ops token, generated on first use and kept 0600 beside the cluster's other secrets."""
    path = state_root / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    state_root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _protected(path: str) -> bool:
    return path == "/" or path.startswith(PROTECTED_PREFIXES)


class OpsTokenGuard:
    """Pure ASGI middleware (no per-request overhead on the public API beyond a prefix test)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _presented(self, scope: dict[str, Any]) -> tuple[bytes | None, bool]:
        """The token the request carries, and whether it came in the query string (dashboard login)."""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return value[7:].strip(), False
            if name == b"cookie":
                for part in value.split(b";"):
                    key, _, val = part.strip().partition(b"=")
                    if key == COOKIE.encode():
                        return val, False
        if scope["path"] == "/" and scope.get("query_string"):
            query = parse_qs(scope["query_string"].decode(errors="replace"))
            if "token" in query:
                return query["token"][0].encode(), True
        return None, False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        given, from_query = self._presented(scope)
        if given is None or not hmac.compare_digest(given, self.token):
            body = json.dumps({"error": {"code": "unauthorized", "message": "this endpoint needs the gateway's "
                                         "ops token (Authorization: Bearer TOKEN)"}}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if not from_query:
            await self.app(scope, receive, send)
            return
        cookie = f"{COOKIE}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
