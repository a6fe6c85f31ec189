"""The only place that prints: rich tables and lines for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from streamctl.errors import StreamctlError
from streamctl.events import Event

if TYPE_CHECKING:
    from streamctl.plan import Plan
    from streamctl.seed.events import SeedEvent
    from streamctl.seed.run import SeedReport


def _width(stream: Any) -> int | None:
    """Terminals keep their width; logs and pipes (CI) get wide tables rather than 80-column wrapping."""
    return None if stream.isatty() else 160


console = Console(highlight=False, emoji=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True, width=_width(sys.stderr))

_EVENT_STYLE = {"begin": ("…", "cyan"), "done": ("✓", "green"), "noop": ("=", "dim"),
                "fail": ("✗", "red"), "info": ("·", "blue")}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def size(n: int) -> str:
    """Bytes for people: B, kB, MB, GB."""
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def raw_line(text: str) -> None:
    """A line of someone else's output (a node's log), unstyled and flushed at once (for --follow)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def line(text: str, style: str | None = None) -> None:
    console.print(escape(text), style=style)


def envelope(cluster: str, exit_code: int, **payload: Any) -> dict[str, Any]:
    """The one shape of every --json answer about a cluster (as `verify` has it): cluster, ok, exit_code,
    then the command's own keys."""
    return {"cluster": cluster, "ok": int(exit_code) == 0, "exit_code": int(exit_code), **payload}


def confirm_or_refuse(question: str, what: str, flag: str) -> None:
    """Ask `question` on a terminal; without one (CI, a pipe) refuse, naming `flag`, rather than assume yes."""
    from streamctl.errors import RefusedError

    if not sys.stdin.isatty():
        raise RefusedError(f"{what}; there is no terminal to ask for confirmation on", hint=f"add {flag} "
                           "to confirm")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise RefusedError("not confirmed: nothing was changed")


def note(text: str) -> None:
    """A remark for people (on stderr, so --json output stays clean)."""
    err_console.print(escape(text), style="yellow")


def event(ev: Event) -> None:
    """One progress line per runner event (kind, node, step, detail, seconds)."""
    mark, style = _EVENT_STYLE.get(ev.kind, ("·", ""))
    secs = f" ({ev.seconds:.1f}s)" if ev.seconds else ""
    detail = f"  {ev.detail}" if ev.detail else ""
    err_console.print(f"[{style}]{mark}[/] {escape(ev.node):<22} {escape(ev.step):<28}"
                      f"[dim]{escape(detail)}{secs}[/]")


def image_progress(node: str, message: str) -> None:
    """A backend's long step (an image pull) as a progress line."""
    event(Event("info", node, "image", message))


_NODE_ACTIONS = ("create", "recreate", "start", "noop")


def progress(verbose: bool, live: bool | None = None) -> Callable[[Event], None]:
    """Event printer for `up`: configuration steps already in place are shown only when verbose.

    On a terminal every step shows when it starts and when it ends; in logs and CI (not a terminal) only
    finished steps, one line each with its time, failures in full, and no pull progress until it ends.
    """
    live = err_console.is_terminal if live is None else live

    def show(ev: Event) -> None:
        if not live and (ev.kind == "begin" or (ev.kind == "info" and ev.detail.startswith("pulling "))):
            return
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


# -- seed progress ---------------------------------------------------------------------------------------
class RowsPerSecond(ProgressColumn):
    """Average rows per second of a table since it started (rich's own speed is a moving estimate)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = task.completed / elapsed if elapsed else 0.0
        return Text(f"{rate:>10,.0f} rows/s", style="cyan")


class SeedProgress:
    """One bar per table, fed by SeedEvents from several loader threads (rich's Progress is thread-safe).

    Without a terminal (CI logs) bars would only add noise: one line per finished table instead.
    """

    def __init__(self) -> None:
        self.live = err_console.is_terminal
        self.progress = Progress(TextColumn("{task.fields[store]:<18}"), TextColumn("{task.description:<19}"),
                                 BarColumn(bar_width=24), TextColumn("{task.completed:>11,.0f} rows"),
                                 RowsPerSecond(), TimeElapsedColumn(), console=err_console)
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> SeedProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def event(self, ev: SeedEvent) -> None:
        key = (ev.store, ev.table)
        if ev.kind == "skip":
            self._line(f"[dim]skipped {escape(ev.table)}: {escape(ev.detail)}[/]")
        elif ev.kind == "info":
            secs = f" ({ev.seconds:.1f}s)" if ev.seconds else ""
            self._line(f"[blue]·[/] {escape(ev.store):<20} {escape(ev.detail)}{secs}")
        elif not self.live:
            if ev.kind == "done":
                rate = ev.rows / ev.seconds if ev.seconds else 0.0
                self._line(f"[green]✓[/] {escape(ev.store):<20} {escape(ev.table):<20} {ev.rows:>11,} rows "
                           f"{ev.seconds:7.2f}s {rate:>10,.0f} rows/s")
        elif ev.kind == "start":
            self.tasks[key] = self.progress.add_task(ev.table, total=ev.total, store=ev.store)
        elif ev.kind == "advance":
            self.progress.advance(self.tasks[key], ev.rows)
        elif ev.kind == "done":
            self.progress.update(self.tasks[key], total=ev.rows, completed=ev.rows)

    def _line(self, markup: str) -> None:
        self.progress.console.print(markup)


def seed_summary(report: SeedReport) -> None:
    table(f"seeded at scale {report.spec.scale:g} (seed {report.spec.seed}, history up to "
                 f"{report.spec.as_of.isoformat()})", ["store", "table", "rows", "seconds", "rows/s"],
                 [(t.store, t.table, f"{t.rows:,}", f"{t.seconds:.2f}", f"{t.rows_per_second:,.0f}")
                  for t in report.tables])
    for what, why in report.skipped:
        line(f"skipped {what}: {why}", "yellow")
    for name, secs in report.replicas.items():
        line(f"{name} caught up ({secs:.1f}s after loading)", "green")
    line(f"done in {report.seconds:.1f}s", "bold green")

