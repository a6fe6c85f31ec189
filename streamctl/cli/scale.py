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
from streamctl.cli.shardops import DryRunOpt, ParallelOpt, TransferOpt, show_plan
from streamctl.scale import plan_scale, scale_workers
from streamctl.shardops.common import MoveOptions


def scale(workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64,
                                               help="Number of Citus workers wanted.")],
          file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
          wait_lock: WaitLockOpt = None, json_: JsonOpt = False, dry_run: DryRunOpt = False,
          transfer_mode: TransferOpt = "auto", parallel: ParallelOpt = 1,
          configure: Annotated[bool, typer.Option(
              "--configure", help="Also configure external new workers (as `up --configure`); without "
                                  "it they are only checked. Other nodes are never touched.")
          ] = False) -> None:
    """Grow or shrink the Citus workers, the data moved and checked. Growing provisions, registers and
    rebalances; shrinking drains, checks and removes. Rows and checksums of every Citus table are compared
    before and after. Only the workers added (or removed) are touched; external new workers are configured
    only with --configure. Ctrl-C stops waiting for the moves.

    Example: streamctl scale --workers 4 --dry-run
    Example: streamctl scale --workers 4 --parallel 2
    """
    ctx = load_context(file, state_dir, backend)
    be = load_backend(ctx)
    if dry_run:
        plan = plan_scale(ctx, be, workers)
        render.print_json(plan.to_json()) if json_ else show_plan(plan, f"moves Citus would make for {workers} workers")
        return
    options = MoveOptions(transfer_mode, parallel)
    with mutating(ctx, "scale", wait_lock):
        res = scale_workers(ctx, be, workers, emit=None if json_ else render.event, options=options,
                            configure=configure)
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, 0, **vars(res)))
        return
    if res.before == res.after:
        render.line(f"already {res.after} workers: nothing to do", "bold green")
        return
    change = f"added {', '.join(res.added)}" if res.added else f"removed {', '.join(res.removed)}"
    render.line(f"{res.before} -> {res.after} workers ({change}); {res.moves} shard moves; rows and "
                f"checksums unchanged ({sum(res.rows.values()):,} rows) in {res.seconds:.1f}s", "bold green")
    if res.topology_updated:
        render.line(f"{file}: metadata.workers.count is now {res.after}")
