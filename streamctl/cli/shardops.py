"""`shards rebalance|move|hot|isolate`: thin commands over streamctl.shardops, rendered here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar

import typer

from streamctl.citus.jobs import JobProgress
from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context, share_with_subcommands
from streamctl.cli.guard import WaitLockOpt, mutating
from streamctl.shardops import move as shard_move
from streamctl.shardops import rebalance as shard_rebalance
from streamctl.shardops import tenants
from streamctl.shardops.common import MoveOptions
from streamctl.shardops.rebalance import RebalancePlan

if TYPE_CHECKING:
    from streamctl.context import ClusterContext
    from streamctl.events import Emit

TRANSFER_HELP = ("How shards travel: auto, force_logical or block_writes. auto (default, safe): logical "
                 "replication, reads and writes go on "
                 "during the move; needs a primary key or replica identity on every table. force_logical: "
                 "logical replication even without one (UPDATE/DELETE on such a table fail while it moves). "
                 "block_writes: a plain copy, usually fastest for small shards, but writes to each moving "
                 "shard wait until its move ends.")
PARALLEL_HELP = ("Moves that may involve one node at a time (Citus's background task executors per node; "
                 "1 = Citus's default, one move at a time). Above 1, shard groups of the same colocation "
                 "group move in parallel: faster, at the cost of more load and WAL on the nodes involved.")

TransferMode = Literal["auto", "force_logical", "block_writes"]
TransferOpt = Annotated[TransferMode, typer.Option("--transfer-mode", help=TRANSFER_HELP)]
ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, max=16, help=PARALLEL_HELP)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the moves Citus would make; change nothing.")]


class JsonResult(Protocol):
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=JsonResult)


def operate(file: Path, state_dir: str | None, command: str, wait_lock: float | None, json_: bool,
            run: Callable[[ClusterContext, Emit | None], R]) -> R | None:
    """One shard operation under the cluster's lock, its progress rendered as it goes; with --json its
    result is printed instead and None returned (the command has nothing left to say)."""
    ctx = load_context(file, state_dir)
    with mutating(ctx, command, wait_lock):
        res = run(ctx, None if json_ else render.event)
    if json_:
        render.print_json(res.to_json())
        return None
    return res


def show_plan(plan: RebalancePlan, title: str) -> None:
    """The plan as a table (table, shard, from, to, rows, bytes) and one summary line."""
    for name in plan.provision:
        render.line(f"would provision and register {name}")
    for name in plan.remove:
        render.line(f"would drain, unregister and remove {name}")
    if not plan.moves:
        render.line("no shard moves needed", "bold green")
        return
    render.table(title, ["table", "shard", "from", "to", "rows", "bytes"],
                 [(m.table, m.shard_id, m.source, m.target, f"{m.rows:,}", render.size(m.bytes))
                  for m in plan.moves])
    data = plan.to_json()
    render.line(f"{data['shard_groups']} shard group moves ({len(plan.moves)} shards): {data['rows']:,} rows, "
                f"{render.size(data['bytes'])}; nothing was changed", "bold")


rebalance_app = typer.Typer(no_args_is_help=False)


@rebalance_app.callback(invoke_without_command=True)
def rebalance(typer_ctx: typer.Context, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
              json_: JsonOpt = False, dry_run: DryRunOpt = False, transfer_mode: TransferOpt = "auto",
              parallel: ParallelOpt = 1, wait_lock: WaitLockOpt = None,
              status_: Annotated[bool, typer.Option("--status", hidden=True)] = False,
              cancel_: Annotated[bool, typer.Option("--cancel", hidden=True)] = False) -> None:
    """Rebalance the shards over the workers, in the background. Progress is shown; rows and checksums of
    every Citus table are compared before and after. Ctrl-C stops waiting, not the rebalance. Its
    subcommands show the latest job (status) or cancel the running one (cancel).

    Example: streamctl shards rebalance --dry-run
    Example: streamctl shards rebalance --parallel 2
    Example: streamctl shards rebalance status --json
    """
    if typer_ctx.invoked_subcommand is not None:
        share_with_subcommands(typer_ctx, "file", "state_dir", "json_", "wait_lock")
        return
    if status_ or cancel_:  # the former spelling, `rebalance --status|--cancel`, kept for scripts
        (cancel if cancel_ else status)(file, state_dir, json_, *((wait_lock,) if cancel_ else ()))
        return
    if dry_run:
        plan = shard_rebalance.plan_rebalance(load_context(file, state_dir))
        render.print_json(plan.to_json()) if json_ else show_plan(plan, "moves Citus would make")
        return
    options = MoveOptions(transfer_mode, parallel)
    res = operate(file, state_dir, "shards rebalance", wait_lock, json_,
                  lambda ctx, emit: shard_rebalance.rebalance(ctx, options, emit=emit))
    if res is None:
        return
    moved = f"{res.progress.moves_total} shard moves" if res.progress else "nothing to move"
    render.line(f"{moved}; rows and checksums unchanged ({sum(res.rows.values()):,} rows) in "
                f"{res.seconds:.1f}s", "bold green")


def _show_job(job: JobProgress, json_: bool) -> None:
    if json_:
        render.print_json(job.to_json())
        return
    render.line(f"rebalance job {job.job_id}: {job.state}; {job.moves_done}/{job.moves_total} shard moves "
                f"done, {render.size(job.bytes_done)} of {render.size(job.bytes_total)}")
    for err in job.errors:
        render.line(f"  {err}", "red")


@rebalance_app.command()
def status(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False) -> None:
    """Show the latest rebalance job: its state, shard moves and bytes done, and its errors.

    Example: streamctl shards rebalance status --json
    """
    _show_job(shard_rebalance.status(load_context(file, state_dir)), json_)


@rebalance_app.command()
def cancel(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
           wait_lock: WaitLockOpt = None) -> None:
    """Cancel the running rebalance; the moves done stay done.

    Example: streamctl shards rebalance cancel
    """
    ctx = load_context(file, state_dir)
    with mutating(ctx, "shards rebalance cancel", wait_lock):
        job = shard_rebalance.cancel(ctx)
    _show_job(job, json_)


def move(shard: Annotated[int, typer.Argument(help="Shard id (any shard of the group: colocated shards "
                                                   "move with it).")],
         to: Annotated[str, typer.Option("--to", help="Target worker, e.g. worker-2.")],
         file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
         transfer_mode: TransferOpt = "auto", wait_lock: WaitLockOpt = None) -> None:
    """Move one shard group to another worker; rows and checksums are compared before and after.

    Example: streamctl shards move 102008 --to worker-3
    """
    res = operate(file, state_dir, "shards move", wait_lock, json_,
                  lambda ctx, emit: shard_move.move_shard(ctx, shard, to, MoveOptions(transfer_mode), emit=emit))
    if res is None:
        return
    if not res.moved:
        render.line(f"shard {shard} is already on {to}: nothing to do", "bold green")
        return
    render.line(f"shard group {shard} ({', '.join(res.shards)}) moved {res.source} -> {res.target}; rows and "
                f"checksums unchanged in {res.seconds:.1f}s", "bold green")


def hot(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many titles.")] = 10
        ) -> None:
    """The hottest titles, with the shard and worker holding each. Most queried (Citus's tenant statistics,
    when collected), else most rows over the colocated content tables.

    Example: streamctl shards hot -n 5 --json | jq '.titles[0].content_id'
    """
    res = tenants.hot_titles(load_context(file, state_dir), limit)
    if json_:
        render.print_json(res.to_json())
        return
    basis = "queries (citus_stat_tenants)" if res.source == "citus_stat_tenants" else "rows"
    render.table(f"hottest titles by {basis}", ["content_id", "title", "queries", "rows", "share", "shard",
                                                 "node"],
                 [(t.content_id, t.title or "", "" if t.queries is None else f"{t.queries:,}", f"{t.rows:,}",
                   f"{100 * t.share:.1f}%", t.shard_id, t.node) for t in res.titles])


def isolate(table: Annotated[str, typer.Option("--table", "-t", help="A distributed table.")],
            key: Annotated[str, typer.Option("--key", "-k", help="The title's content_id.")],
            file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
            transfer_mode: TransferOpt = "auto", wait_lock: WaitLockOpt = None) -> None:
    """Give one title a shard of its own; its rows in every colocated table go with it. Then show where it
    is.

    Example: streamctl shards isolate -t content_metadata -k "$CONTENT_ID"
    """
    res = operate(file, state_dir, "shards isolate", wait_lock, json_,
                  lambda ctx, emit: tenants.isolate_title(ctx, table, key, MoveOptions(transfer_mode), emit=emit))
    if res is None:
        return
    render.table(f"{key}: {'isolated' if res.isolated else 'already isolated'} on {res.node}",
                 ["table", "shard", "rows in shard", "rows of this title"],
                 [(t, s["shard"], f"{s['rows']:,}", f"{s['key_rows']:,}") for t, s in res.shards.items()])
