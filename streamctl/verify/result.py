"""What a check reports: one CheckResult per (check, target), plus the helper that times and guards it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streamctl.errors import StreamctlError


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the check ran and found the platform wrong
    ERROR = "error"  # the check could not run (unreachable node, missing privilege, ...)
    SKIPPED = "skipped"  # the role is disabled, or there is nothing to judge yet; detail says why


@dataclass(frozen=True)
class CheckResult:
    """One verdict: which check, on what (node, table, replica/table), and the evidence in `data`."""

    check: str
    target: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "status": self.status.value,
                "detail": self.detail, "seconds": round(self.seconds, 4), "data": self.data}


@dataclass(frozen=True)
class Verdict:
    """What a check body returns; `guarded` turns it into a timed CheckResult."""

    status: Status
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def passed(detail: str = "", **data: Any) -> Verdict:
    return Verdict(Status.PASSED, detail, data)


def failed(detail: str, **data: Any) -> Verdict:
    return Verdict(Status.FAILED, detail, data)


def skipped(detail: str, **data: Any) -> Verdict:
    return Verdict(Status.SKIPPED, detail, data)


def describe(exc: BaseException) -> str:
    """The first line of an exception, as a check's detail."""
    if isinstance(exc, StreamctlError):
        return exc.message
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def guarded(check: str, target: str, body: Callable[[], Verdict]) -> CheckResult:
    """Run one check body: time it, and report any exception as `error` (the check could not run)."""
    t0 = time.monotonic()
    try:
        verdict = body()
    except Exception as exc:  # noqa: BLE001 - every failure to run a check is reported, never raised
        return CheckResult(check, target, Status.ERROR, describe(exc), time.monotonic() - t0)
    return CheckResult(check, target, verdict.status, verdict.detail, time.monotonic() - t0, verdict.data)


def raising(exc: BaseException) -> Callable[[], Verdict]:
    """A body that re-raises `exc`: reports, per target, a failure that happened before the targets split."""

    def body() -> Verdict:
        raise exc

    return body
