"""The only place that prints: rich tables and lines for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streamctl.errors import StreamctlError
from streamctl.plan import Plan


def _width(stream: Any) -> int | None:
    """Terminals keep their width; logs and pipes (CI) get wide tables rather than 80-column wrapping."""
    return None if stream.isatty() else 160


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))

_EVENT_STYLE = {"begin": ("…", "cyan"), "done": ("✓", "green"), "noop": ("=", "dim"),
                "fail": ("✗", "red"), "info": ("·", "blue")}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def line(text: str, style: str | None = None) -> None:
    console.print(escape(text), style=style)


def event(ev: Any) -> None:
    """One progress line per runner event (kind, node, step, detail, seconds)."""
    mark, style = _EVENT_STYLE.get(ev.kind, ("·", ""))
    secs = f" ({ev.seconds:.1f}s)" if ev.seconds else ""
    detail = f"  {ev.detail}" if ev.detail else ""
    err_console.print(f"[{style}]{mark}[/] {escape(ev.node):<22} {escape(ev.step):<28}"
                      f"[dim]{escape(detail)}{secs}[/]")


_NODE_ACTIONS = ("create", "recreate", "start", "noop")


def progress(verbose: bool) -> Callable[[Any], None]:
    """Event printer for `up`: configuration steps already in place are shown only when verbose."""

    def show(ev: Any) -> None:
        if verbose or ev.kind != "noop" or ev.step in _NODE_ACTIONS:
            event(ev)

    return show


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          styles: dict[str, str] | None = None) -> None:
    t = Table(title=title, header_style="bold")
    for col in columns:
        t.add_column(col, style=(styles or {}).get(col))
    for row in rows:
        t.add_row(*(escape(str(c)) if not hasattr(c, "__rich__") else c for c in row))
    console.print(t)


def plan(p: Plan) -> None:
    """`up --dry-run`: one row per node, then per configuration step (the rows are the plan's own)."""
    table(f"plan for {p.cluster} ({p.backend})", ["node", "action", "why"],
          [(r.node, r.action, r.detail) for r in p.rows()])


def error(exc: StreamctlError, debug: bool = False) -> None:
    if debug:
        err_console.print(escape("".join(traceback.format_exception(exc))), style="dim")
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}")
    for d in exc.details:
        err_console.print(f"  {escape(d)}")
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}")


def unexpected(exc: BaseException, debug: bool) -> None:
    if debug:
        err_console.print(escape("".join(traceback.format_exception(exc))))
    err_console.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
    if not debug:
        err_console.print("[yellow]hint:[/] run again with --debug for the traceback")
