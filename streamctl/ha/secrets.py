"""The passwords only high availability needs (Patroni's replication, rewind and REST API users): generated on
first use and kept in the state directory's ha-secrets.json, mode 0600 from its first byte.

`rotate-secrets ha_passwords` gives them new values: the ones they replace stay in the file as `previous`
until every member's Patroni has taken the new ones (a rotation that stopped halfway is finished by the next
one, or by `up`), so the REST API is asked with the old password where the new one is not taken yet."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

from streamctl.atomic import write_file

FILE = "ha-secrets.json"
KEYS = ("replication_password", "rewind_password", "rest_password")
PREVIOUS = "previous"  # the values a rotation replaces, while it is not finished
_LOCK = threading.Lock()  # the groups of one `up` are written in parallel threads: one set of passwords


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path: Path, stored: dict[str, Any]) -> None:
    write_file(path, json.dumps(stored, indent=2) + "\n", 0o600)


def ha_secrets(state_root: Path, create: bool = False) -> dict[str, str]:
    """The HA passwords; the missing ones are generated and stored when `create` (else left blank)."""
    path = state_root / FILE
    with _LOCK:
        stored = _read(path)
        missing = [k for k in KEYS if not stored.get(k)]
        if missing and create:
            stored.update({k: secrets.token_urlsafe(24) for k in missing})
            _write(path, stored)
    return {k: stored.get(k, "") for k in KEYS}


def begin_rotation(state_root: Path) -> None:
    """New values for every HA password; the replaced ones kept as `previous` (those of an unfinished rotation
    are kept as they were: some member may still have them)."""
    path = state_root / FILE
    with _LOCK:
        stored = _read(path)
        stored.setdefault(PREVIOUS, {k: stored.get(k, "") for k in KEYS})
        stored.update({k: secrets.token_urlsafe(24) for k in KEYS})
        _write(path, stored)


def rotation_pending(state_root: Path) -> bool:
    return PREVIOUS in _read(state_root / FILE)


def end_rotation(state_root: Path) -> None:
    """Every member has the new values: the previous ones are forgotten."""
    path = state_root / FILE
    with _LOCK:
        stored = _read(path)
        if stored.pop(PREVIOUS, None) is not None:
            _write(path, stored)


def rest_passwords(state_root: Path) -> list[str]:
    """The REST API's password, then (mid-rotation) the one it replaces."""
    stored = _read(state_root / FILE)
    out = [str(stored.get("rest_password", ""))]
    old = str((stored.get(PREVIOUS) or {}).get("rest_password", ""))
    return out + [old] if old and old not in out else out
