"""`seed`: load realistic data into every store, with a progress bar per table (or a JSON summary)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context
from streamctl.cli.guard import WaitLockOpt, mutating
from streamctl.seed.run import SeedOptions
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
         wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Fill every store with realistic, consistent data. Loaded with COPY; waits for the replicas.

    Example: streamctl seed --scale 0.1 --seed 7 --reset
    Example: streamctl seed -f examples/external.yaml --yes-write-external
    """
    ctx = load_context(file, state_dir)
    options = SeedOptions(scale=scale, seed=seed_, as_of=as_of.date() if as_of else None, reset=reset,
                          replica_timeout=replica_timeout, allow_external=yes_write_external)
    with mutating(ctx, "seed", wait_lock):
        if json_:
            render.print_json(run_seed(ctx, options).to_dict())
            return
        with render.SeedProgress() as progress:
            report = run_seed(ctx, options, progress.event)
    render.seed_summary(report)
