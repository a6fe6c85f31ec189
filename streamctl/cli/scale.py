"""`scale --workers N`: grow or shrink the Citus workers, data moved and checked, topology file updated."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import (
    DEFAULT_FILE,
    BackendOpt,
    FileOpt,
    JsonOpt,
    StateDirOpt,
    load_backend,
    load_context,
)
from streamctl.cli.guard import WaitLockOpt, mutating
from streamctl.scale import scale_workers


def scale(workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64,
                                               help="Number of Citus workers wanted.")],
          file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
          wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Grow (provision, register, rebalance) or shrink (drain, check, remove) the Citus workers.

    Example: streamctl scale --workers 4 && streamctl verify --only citus
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend)
    with mutating(ctx, "scale", wait_lock):
        res = scale_workers(ctx, be, workers, emit=None if json_ else render.event)
    if json_:
        render.print_json(vars(res))
        return
    if res.before == res.after:
        render.line(f"already {res.after} workers: nothing to do", "bold green")
        return
    change = f"added {', '.join(res.added)}" if res.added else f"removed {', '.join(res.removed)}"
    render.line(f"{res.before} -> {res.after} workers ({change}); {res.moves} shard moves; row counts "
                f"unchanged ({sum(res.rows.values()):,} rows) in {res.seconds:.1f}s", "bold green")
    if res.topology_updated:
        render.line(f"{file}: metadata.workers.count is now {res.after}")
