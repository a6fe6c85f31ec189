"""`seed`: load realistic data into every store, with a progress bar per table (or a JSON summary)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context
from streamctl.seed.events import SeedEvent
from streamctl.seed.run import SeedOptions, SeedReport
from streamctl.seed.run import seed as run_seed


def seed(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
         scale: Annotated[float, typer.Option(min=0.0001, help="Size: 1 = 10k titles, 50k users, 1M views.")]
         = 1.0,
         seed_: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same data.")]
         = 42,
         reset: Annotated[bool, typer.Option("--reset", help="Empty seeded tables, reviews and keys first.")]
         = False,
         as_of: Annotated[datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"],
                                                        help="Last day of watch history (default: today).")]
         = None,
         replica_timeout: Annotated[float, typer.Option(help="Seconds to wait for replicas to catch up.")]
         = 600.0,
         yes_write_external: Annotated[bool, typer.Option(
             "--yes-write-external", help="Confirm writing to external nodes (refused without it, exit 10).")]
         = False,
         json_: JsonOpt = False) -> None:
    """Fill every store with realistic, consistent data, loaded with COPY; waits for the replicas.

    Example: streamctl seed --scale 0.1 --seed 7 --reset
    Example: streamctl seed -f examples/external.yaml --scale 0.01 --yes-write-external
    """
    ctx = load_context(file, state_dir)
    options = SeedOptions(scale=scale, seed=seed_, as_of=as_of.date() if as_of else None, reset=reset,
                          replica_timeout=replica_timeout, allow_external=yes_write_external)
    if json_:
        render.print_json(run_seed(ctx, options).to_dict())
        return
    with SeedProgress() as progress:
        report = run_seed(ctx, options, progress.event)
    _summary(report)


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
        self.live = render.err_console.is_terminal
        self.progress = Progress(TextColumn("{task.fields[store]:<18}"), TextColumn("{task.description:<19}"),
                                 BarColumn(bar_width=24), TextColumn("{task.completed:>11,.0f} rows"),
                                 RowsPerSecond(), TimeElapsedColumn(), console=render.err_console)
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


def _summary(report: SeedReport) -> None:
    render.table(f"seeded at scale {report.spec.scale:g} (seed {report.spec.seed}, history up to "
                 f"{report.spec.as_of.isoformat()})", ["store", "table", "rows", "seconds", "rows/s"],
                 [(t.store, t.table, f"{t.rows:,}", f"{t.seconds:.2f}", f"{t.rows_per_second:,.0f}")
                  for t in report.tables])
    for what, why in report.skipped:
        render.line(f"skipped {what}: {why}", "yellow")
    for name, secs in report.replicas.items():
        render.line(f"{name} caught up ({secs:.1f}s after loading)", "green")
    render.line(f"done in {report.seconds:.1f}s", "bold green")

