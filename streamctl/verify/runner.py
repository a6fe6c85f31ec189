"""Runs the selected checks (families in parallel) and gathers one report with its exit code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from streamctl.context import ClusterContext
from streamctl.errors import ExitCode, NotFoundError
from streamctl.verify import last
from streamctl.verify.registry import CheckSpec, select
from streamctl.verify.result import CheckResult, Status, guarded, raising, skipped

SCHEMA_ID = "streamctl.verify/1"


@dataclass(frozen=True)
class VerifyReport:
    cluster: str
    results: list[CheckResult]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def exit_code(self) -> ExitCode:
        """8 when any check failed (a proven defect wins), else 9 when any could not run, else 0."""
        if self.count(Status.FAILED):
            return ExitCode.CHECK_FAILED
        if self.count(Status.ERROR):
            return ExitCode.CHECK_ERROR
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA_ID, "cluster": self.cluster, "ok": self.exit_code is ExitCode.OK,
                "exit_code": int(self.exit_code), "seconds": round(self.seconds, 3),
                "summary": {s.value: self.count(s) for s in Status},
                "checks": [r.to_json() for r in self.results]}


def _run_one(ctx: ClusterContext, spec: CheckSpec) -> list[CheckResult]:
    reason = spec.skip(ctx.topology)
    if reason:
        return [guarded(spec.name, "-", lambda: skipped(reason))]
    try:
        return spec.run(ctx)
    except Exception as exc:  # noqa: BLE001 - a check family that breaks reports, never aborts the others
        return [guarded(spec.name, "-", raising(exc))]


def run_checks(ctx: ClusterContext, only: Sequence[str] | None = None) -> VerifyReport:
    """Run the checks against a provisioned cluster; results keep the registry's order. The heavy checks
    (whole tables read) are started first: the others are quick and fill the pool's other threads."""
    specs = select(only)
    if not ctx.store.exists() and not all(n.is_external for n in ctx.topology.nodes()):
        raise NotFoundError(f"no state for cluster {ctx.topology.cluster} under {ctx.store.root}",
                            hint="run `streamctl up` first")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(len(specs), 6))) as pool:
        started = {s.name: pool.submit(_run_one, ctx, s) for s in sorted(specs, key=lambda s: not s.heavy)}
        batches = [started[s.name].result() for s in specs]
    report = VerifyReport(ctx.topology.cluster, [r for batch in batches for r in batch], time.monotonic() - t0)
    last.store(ctx.store.root, report.results)  # what the metrics export (streamctl_verify_passed)
    return report
