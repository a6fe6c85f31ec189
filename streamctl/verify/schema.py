"""The documented JSON Schema of `streamctl verify --json` (printed by `streamctl verify --schema`)."""

from __future__ import annotations

from typing import Any

from streamctl.verify.result import Status
from streamctl.verify.runner import SCHEMA_ID

_STATUSES = [s.value for s in Status]

VERIFY_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "streamctl verify report",
    "type": "object",
    "required": ["schema", "cluster", "ok", "exit_code", "seconds", "summary", "checks"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID, "description": "schema identifier; bumped on incompatible change"},
        "cluster": {"type": "string"},
        "ok": {"type": "boolean", "description": "true when no check failed or errored"},
        "exit_code": {"type": "integer", "enum": [0, 8, 9],
                      "description": "0 ok; 8 a check failed; 9 a check could not run (and none failed)"},
        "seconds": {"type": "number", "minimum": 0},
        "summary": {"type": "object", "required": _STATUSES, "additionalProperties": False,
                    "properties": {s: {"type": "integer", "minimum": 0} for s in _STATUSES}},
        "checks": {"type": "array", "items": {
            "type": "object",
            "required": ["check", "target", "status", "detail", "seconds", "data"],
            "additionalProperties": False,
            "properties": {
                "check": {"type": "string", "description": "e.g. replication.data"},
                "target": {"type": "string", "description": "node, table, or replica/table; '-' for a "
                                                            "whole check (skipped or broken)"},
                "status": {"enum": _STATUSES},
                "detail": {"type": "string"},
                "seconds": {"type": "number", "minimum": 0},
                "data": {"type": "object", "description": "evidence, per check (counts, lag, skew...)"},
            },
        }},
    },
}
