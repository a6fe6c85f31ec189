"""The gateway token: when the gateway listens beyond loopback, every route needs it except the ones
`gateway.public_routes` lists (the user routes list every user and their watch history).

The token is generated once into the state directory (`gateway-token`, mode 0600) and never printed. A
token file that is empty or unreadable is an error, never "no guard". Clients send `Authorization: Bearer
TOKEN`; a browser opens the dashboard once as `/?token=TOKEN`, which sets an HttpOnly cookie for the
dashboard's own requests.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from streamctl.atomic import write_file
from streamctl.errors import PreflightError
from streamctl.state import GATEWAY_TOKEN_FILE

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
COOKIE = "streamctl_ops_token"
MIN_TOKEN_CHARS = 16


def needs_token(host: str) -> bool:
    """Anything but the loopback address itself (a wildcard, a LAN address, another 127.x) needs the token."""
    return host not in LOOPBACK


def ensure_token(state_root: Path) -> str:
    """The gateway's token, generated on first use and kept 0600 beside the cluster's other secrets.

    A file that exists but cannot be read, or holds no usable token, raises: serving without a guard
    because a file was truncated would open every route."""
    path = state_root / GATEWAY_TOKEN_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _new_token(state_root, path)
    except OSError as exc:
        raise _bad_token(path, f"cannot be read ({exc.strerror})") from None
    try:
        with os.fdopen(fd) as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_token(path, f"cannot be read ({exc})") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise _bad_token(path, "is empty" if not token else "holds no usable token")
    return token


def _generate() -> str:
    return secrets.token_urlsafe(32)


def replace_token(state_root: Path) -> None:
    """A new token in place of the old one (rotation), written whole (0600): a running gateway keeps the old
    one until it restarts."""
    write_file(state_root / GATEWAY_TOKEN_FILE, _generate() + "\n", 0o600)


def _new_token(state_root: Path, path: Path) -> str:
    state_root.mkdir(parents=True, exist_ok=True)
    token = _generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first: read theirs
        return ensure_token(state_root)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _bad_token(path: Path, why: str) -> PreflightError:
    return PreflightError(f"the gateway token file {path} {why}; refusing to serve beyond loopback without it",
                          hint="remove the file and start the gateway again to generate a new token")


def route_pattern(routes: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for gateway.public_routes (`{name}`: one path segment, trailing `*`: any rest)."""
    parts = []
    for route in routes:
        out = ""
        for piece in re.split(r"(\{[^/}]*\}|\*$)", route):
            out += "[^/]+" if piece.startswith("{") else ".*" if piece == "*" else re.escape(piece)
        parts.append(out)
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


class OpsTokenGuard:
    """Pure ASGI middleware: every request needs the token unless its path is one of `public_routes`."""

    def __init__(self, app: Any, token: str, public_routes: Iterable[str] = ()) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError("the gateway guard needs a token")  # never a guard that lets everything through
        self.app, self.token = app, token.encode()
        self.public = route_pattern(public_routes)

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
        if scope["type"] != "http" or (self.public is not None and self.public.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        given, from_query = self._presented(scope)
        if given is None or not hmac.compare_digest(given, self.token):
            body = json.dumps({"error": {"code": "unauthorized", "message": "this endpoint needs the gateway's "
                                         "token (Authorization: Bearer TOKEN)"}}).encode()
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
