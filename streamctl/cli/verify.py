"""`verify`: run every check and show a table (or --json); the exit code says passed, failed or errored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context
from streamctl.errors import NotFoundError
from streamctl.verify.registry import CHECKS, select
from streamctl.verify.result import Status
from streamctl.verify.runner import run_checks
from streamctl.verify.schema import VERIFY_JSON_SCHEMA

_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.ERROR: "bold magenta",
          Status.SKIPPED: "dim"}


class _Styled:
    """A table cell rendered with a style (render.table passes objects with __rich__ through)."""

    def __init__(self, text: str, style: str) -> None:
        self.text, self.style = text, style

    def __rich__(self) -> Text:
        return Text(self.text, style=self.style)


def _known_checks(value: list[str] | None) -> list[str] | None:
    """An unknown check name is a bad command-line value: exit 2, with the known names."""
    try:
        select(value)
    except NotFoundError as exc:
        raise typer.BadParameter(f"{exc.message} ({exc.hint})") from None
    return value


OnlyOpt = Annotated[list[str] | None, typer.Option(
    "--only", callback=_known_checks,
    help="Run only these checks or families (repeat, or comma-separate): "
         + ", ".join(sorted({c.family for c in CHECKS})) + ".")]


def verify(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
           only: OnlyOpt = None,
           schema: Annotated[bool, typer.Option("--schema", help="Print the --json schema and exit.")] = False
           ) -> None:
    """Prove the platform is correct, check by check. Nodes, Citus, replicas (data checksums), FDW,
    MongoDB, Redis.

    Exit codes: 0 all passed or skipped; 8 a check failed; 9 a check could not run.

    Example: streamctl verify --only replication --json | jq '.summary'
    """
    if schema:
        render.print_json(VERIFY_JSON_SCHEMA)
        return
    ctx = load_context(file, state_dir)
    report = run_checks(ctx, only)
    if json_:
        render.print_json(report.to_json())
    else:
        render.table(f"verify {report.cluster}", ["check", "target", "status", "detail", "seconds"],
                     [(r.check, r.target, _Styled(r.status.value, _STYLE[r.status]), r.detail,
                       f"{r.seconds:.2f}") for r in report.results])
        summary = ", ".join(f"{report.count(s)} {s.value}" for s in Status)
        style = "bold green" if report.exit_code == 0 else "bold red"
        render.line(f"{summary} in {report.seconds:.1f}s", style)
    raise typer.Exit(int(report.exit_code))
