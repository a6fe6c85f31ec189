"""`rotate-secrets [NAME...]`: new values applied everywhere, then replication, FDW, gateway and Redis checked."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, JsonOpt, StateDirOpt, load_backend, load_context
from streamctl.cli.guard import StepLog, WaitLockOpt, mutating
from streamctl.secrets_rotation import NAMES, check_names, rotate

NamesArg = Annotated[list[str] | None, typer.Argument(
    metavar="[NAME]...", help=f"Secrets to rotate (default: every one in use): {', '.join(NAMES)}.",
    show_default=False)]


def rotate_secrets(names: NamesArg = None, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
                   backend: BackendOpt = None, wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Rotate the cluster's secrets. A new value for each NAME (none: all in use) is given to every role,
    subscription, user mapping and store that holds it, logging in with the old value, and recorded as
    applied only then; a run that stops halfway is finished by the next one (or by `up`). A secret set in
    the topology (secrets.NAME, e.g. ${VAR}) is not chosen here: change it there, then run this. Values are
    never printed.

    Exit codes: 0 rotated and every check passed; 2 unknown NAME, or NAME is set in the topology unchanged;
    5 a change failed (run again to finish); 7 no cluster state; 8 a check failed; 9 a check could not run.

    Example: streamctl rotate-secrets replication_password gateway_password --json
    Example: streamctl rotate-secrets -f topology.yaml --wait-lock 600
    """
    check_names(names or [])
    ctx = load_context(file, state_dir, backend)
    be = load_backend(ctx)
    steps = StepLog(None if json_ else render.event)
    with mutating(ctx, "rotate-secrets", wait_lock, steps):
        report = rotate(ctx, be, names, emit=steps)
    if json_:
        render.print_json(report.to_json())
    else:
        render.table(f"rotate-secrets {report.cluster}", ["secret", "status", "changed"],
                     [(s.name, s.status, "; ".join(s.changed) or s.detail) for s in report.secrets])
        render.table("checks", ["check", "target", "status", "detail"],
                     [(c.check, c.target, c.status.value, c.detail) for c in report.checks])
        style = "bold green" if report.exit_code == 0 else "bold red"
        failed = [c for c in report.checks if c.status.value != "passed"]
        render.line(f"{len(report.checks) - len(failed)} of {len(report.checks)} checks passed in "
                    f"{report.seconds:.1f}s", style)
    raise typer.Exit(int(report.exit_code))
