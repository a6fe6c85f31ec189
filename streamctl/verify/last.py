"""The last `verify` result, kept in the state directory (`verify-last.json`) for the metrics to export."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from streamctl.atomic import write_file
from streamctl.verify.result import CheckResult, Status

FILE = "verify-last.json"


@dataclass(frozen=True)
class LastVerify:
    finished_at: float  # unix time
    checks: dict[str, bool]  # check -> every target passed or was skipped


def store(state_root: Path, results: list[CheckResult]) -> None:
    """Best effort: a state directory that cannot be written does not fail `verify`. A run of some checks
    (--only) replaces those checks' results and keeps the others'."""
    checks: dict[str, bool] = {}
    previous = LastVerifyFile(state_root)()
    if previous is not None:
        checks.update(previous.checks)
    checks.update({r.check: True for r in results})
    for r in results:
        checks[r.check] = checks.get(r.check, True) and r.status in (Status.PASSED, Status.SKIPPED)
    path = state_root / FILE
    try:
        if state_root.is_dir():
            write_file(path, json.dumps({"finished_at": time.time(), "checks": checks}))
    except OSError:
        pass


class LastVerifyFile:
    """Reads the file again only when it changed (a scrape costs one stat)."""

    def __init__(self, state_root: Path) -> None:
        self.path = state_root / FILE
        self._seen: float | None = None
        self._value: LastVerify | None = None

    def __call__(self) -> LastVerify | None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return None
        if mtime != self._seen:
            try:
                data = json.loads(self.path.read_text())
                self._value = LastVerify(float(data["finished_at"]),
                                         {str(k): bool(v) for k, v in data["checks"].items()})
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._value = None
            self._seen = mtime
        return self._value
