"""`up`, `down` and `status`: bring the cluster to its topology, take it down, show how it is."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, JsonOpt, StateDirOpt, load_backend, load_context
from streamctl.cli.guard import StepLog, WaitLockOpt, mutating
from streamctl.runner import Runner
from streamctl.status import cluster_status


def up(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
       dry_run_: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
       timeout: Annotated[float, typer.Option(help="Seconds to wait for each node to be ready.")] = 120.0,
       verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                             help="Also list configuration steps already in place.")] = False,
       configure: Annotated[bool, typer.Option(
           "--configure", help="Also configure external nodes (schema, Citus, replication, FDW); without it "
                               "they are only checked and every difference is reported (exit 8).")] = False,
       from_backup: Annotated[str | None, typer.Option(
           "--from-backup", metavar="NAME", help="Make a new cluster from this backup set (or restore point) "
                                                 "of the topology's backup repository instead of empty "
                                                 "databases; verifies it (exit 8/9 when a check fails).")]
       = None,
       wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Provision everything the topology describes; a second run changes nothing. External nodes are
    only checked, unless --configure.

    Example: streamctl up -f examples/no-citus.yaml --backend local --wait-lock 600
    Example: streamctl up -f examples/external.yaml --dry-run && streamctl up -f examples/external.yaml --configure
    Example: streamctl up --from-backup nightly-1
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend, progress=None if json_ else render.image_progress)
    steps = StepLog(None if json_ else render.progress(verbose))
    runner = Runner(ctx, be, emit=steps, timeout=timeout, configure_external=configure)
    if from_backup is not None and not dry_run_:
        from streamctl.backup.restore import up_from_backup
        from streamctl.cli.backup import _report

        with mutating(ctx, "up", wait_lock, steps):
            restored = up_from_backup(ctx, be, from_backup, emit=steps, timeout=timeout)
        _report(restored, json_)
        return
    if dry_run_:
        plan = runner.preview()
        if json_:
            render.print_json(plan.to_json())
        else:
            render.plan(plan)
        return
    with mutating(ctx, "up", wait_lock, steps):
        result = runner.up()
    if json_:
        render.print_json(result.to_json())
    elif result.changed:
        render.line(f"cluster {ctx.topology.cluster} is up ({be.name}, {result.seconds:.1f}s)", "bold green")
    else:
        render.line(f"cluster {ctx.topology.cluster} is up to date: nothing to do ({result.seconds:.1f}s)",
                    "bold green")


def down(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
         volumes: Annotated[bool, typer.Option("--volumes", "-v",
                                               help="Also delete all data, secrets and state.")] = False,
         skip_external: Annotated[bool, typer.Option(
             "--skip-external", help="Take down only the nodes streamctl provisioned; without it a topology "
                                     "with external nodes is refused (exit 10).")] = False,
         wait_lock: WaitLockOpt = None) -> None:
    """Stop the cluster (data kept), or destroy it with --volumes. External nodes are never touched.

    Example: streamctl down --volumes
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend)
    with mutating(ctx, "down", wait_lock):
        Runner(ctx, be, emit=render.progress(verbose=True)).down(volumes=volumes, skip_external=skip_external)
    render.line(f"cluster {ctx.topology.cluster} " + ("destroyed (data removed)" if volumes else
                                                       "stopped (data kept)"), "bold green")


def status(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
           json_: JsonOpt = False) -> None:
    """Show every node: where it runs, its address and whether it answers.

    Example: streamctl status --json | jq '.[] | select(.healthy | not)'
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend)
    rows = cluster_status(ctx, be)
    if json_:
        render.print_json(rows)
    else:
        render.table(f"{ctx.topology.cluster} ({be.name})",
                     ["node", "role", "state", "healthy", "address", "detail"],
                     [(r["name"], r["role"], r["state"], "yes" if r["healthy"] else "no",
                       f"{r['host']}:{r['port']}", r["detail"]) for r in rows])
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(1)
