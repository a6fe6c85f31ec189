"""The passwords only high availability needs (Patroni's replication, rewind and REST API users): generated on
first use and kept in the state directory's ha-secrets.json, mode 0600 from its first byte."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

from streamctl.atomic import write_file

FILE = "ha-secrets.json"
KEYS = ("replication_password", "rewind_password", "rest_password")
_LOCK = threading.Lock()  # the groups of one `up` are written in parallel threads: one set of passwords


def ha_secrets(state_root: Path, create: bool = False) -> dict[str, str]:
    """The HA passwords; the missing ones are generated and stored when `create` (else left blank)."""
    path = state_root / FILE
    with _LOCK:
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [k for k in KEYS if not stored.get(k)]
        if missing and create:
            stored.update({k: secrets.token_urlsafe(24) for k in missing})
            write_file(path, json.dumps(stored, indent=2) + "\n", 0o600)
    return {k: stored.get(k, "") for k in KEYS}
