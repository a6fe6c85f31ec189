"""`up`, `down` and `status`: bring the cluster to its topology, take it down, show how it is."""

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
    VerboseOpt,
    YesOpt,
    load_backend,
    load_context,
)
from streamctl.cli.guard import StepLog, WaitLockOpt, mutating
from streamctl.errors import ExitCode
from streamctl.runner import Runner
from streamctl.status import cluster_status

RemoveOrphansOpt = typer.Option(
    "--remove-orphans", help="Remove the nodes the state knows that the topology no longer has: workers drained "
                             "and unregistered, replicas' subscriptions and slots dropped, then stopped and "
                             "their data removed.")


def up(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
       dry_run_: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
       timeout: Annotated[float, typer.Option(help="Seconds to wait for each node to be ready.")] = 120.0,
       verbose: VerboseOpt = False,
       configure: Annotated[bool, typer.Option(
           "--configure", help="Also configure external nodes (schema, Citus, replication, FDW); without it "
                               "they are only checked and every difference is reported (exit 8).")] = False,
       remove_orphans: Annotated[bool, RemoveOrphansOpt] = False,
       adopt: Annotated[bool, typer.Option(
           "--adopt", help="Take over nodes another state directory made (their instance id differs; without it "
                           "they are refused, exit 13): data kept, relabelled with this state's id. Needs the "
                           "owner's secrets.json in this state directory.")] = False,
       from_backup: Annotated[str | None, typer.Option(
           "--from-backup", metavar="NAME", help="Make a new cluster from this backup set (or restore point) "
                                                 "of the topology's backup repository instead of empty "
                                                 "databases; verifies it (exit 8/9 when a check fails).")]
       = None,
       wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Provision everything the topology describes; a second run changes nothing. External nodes are
    only checked, unless --configure. Nodes an earlier `up` made that the topology no longer has
    (orphans) are named, and removed with --remove-orphans.

    Example: streamctl up -f examples/no-citus.yaml --backend local
    Example: streamctl up -f examples/external.yaml --configure
    Example: streamctl up --remove-orphans
    Example: streamctl up --adopt
    Example: streamctl up --from-backup nightly-1
    """
    ctx = load_context(file, state_dir, backend)
    ctx.adopt = adopt
    be = load_backend(ctx, progress=None if json_ else render.image_progress)
    steps = StepLog(None if json_ else render.progress(verbose))
    runner = Runner(ctx, be, emit=steps, timeout=timeout, configure_external=configure)
    if from_backup is not None and not dry_run_:
        from streamctl.backup.restore import up_from_backup
        from streamctl.cli.backup import report_restore

        with mutating(ctx, "up", wait_lock, steps):
            restored = up_from_backup(ctx, be, from_backup, emit=steps, timeout=timeout)
        report_restore(restored, json_)
        return
    if dry_run_:
        plan = runner.preview(remove_orphans=remove_orphans)
        if json_:
            render.print_json(plan.to_json())
        else:
            render.plan(plan)
        return
    with mutating(ctx, "up", wait_lock, steps):
        result = runner.up(remove_orphans=remove_orphans)
    if json_:
        render.print_json(result.to_json())
        return
    if result.removed_orphans:
        render.line(f"removed orphans: {', '.join(result.removed_orphans)}", "yellow")
    if result.orphans:
        render.line(f"orphans (no longer in the topology, left as they are): {', '.join(result.orphans)}; "
                    "`streamctl up --remove-orphans` removes them", "yellow")
    if result.changed:
        render.line(f"cluster {ctx.topology.cluster} is up ({be.name}, {result.seconds:.1f}s)", "bold green")
    else:
        render.line(f"cluster {ctx.topology.cluster} is up to date: nothing to do ({result.seconds:.1f}s)",
                    "bold green")


def down(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
         volumes: Annotated[bool, typer.Option(
             "--volumes", help="Also delete all data, secrets and state (asks first on a terminal; without one "
                               "it needs --yes).")] = False,
         yes: YesOpt = False,
         skip_external: Annotated[bool, typer.Option(
             "--skip-external", help="Take down only the nodes streamctl provisioned; without it a topology "
                                     "with external nodes is refused (exit 10).")] = False,
         remove_orphans: Annotated[bool, RemoveOrphansOpt] = False,
         wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Stop the cluster (data kept), or destroy it with --volumes. External nodes are never touched.
    Orphans (nodes the state knows, the topology no longer has) are stopped too, or removed with
    --volumes or --remove-orphans.

    Example: streamctl down --volumes --yes
    Example: streamctl down --remove-orphans
    """
    ctx = load_context(file, state_dir, backend)
    cluster = ctx.topology.cluster
    if volumes and not yes:
        render.confirm_or_refuse(f"Delete every node's data, the secrets and the state of cluster {cluster}?",
                                 what=f"`down --volumes` deletes every node's data, the secrets and the state "
                                      f"of cluster {cluster}", flag="--yes")
    be = load_backend(ctx)
    with mutating(ctx, "down", wait_lock):
        nodes = Runner(ctx, be, emit=None if json_ else render.progress(verbose=True)).down(
            volumes=volumes, skip_external=skip_external, remove_orphans=remove_orphans)
    if json_:
        render.print_json(render.envelope(cluster, 0, backend=be.name, volumes=volumes,
                                          outcome="destroyed" if volumes else "stopped", nodes=nodes))
        return
    render.line(f"cluster {cluster} " + ("destroyed (data removed)" if volumes else "stopped (data kept)"),
                "bold green")


def status(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
           json_: JsonOpt = False) -> None:
    """Show every node: where it runs and whether it answers. Orphans (nodes the state knows
    that the topology no longer has) follow; they do not count towards the exit code. Exit 12 when a node
    is not healthy (1 is kept for internal errors).

    Example: streamctl status --json | jq '.nodes[] | select(.healthy | not)'
    """
    ctx = load_context(file, state_dir, backend)
    be = load_backend(ctx)
    rows = cluster_status(ctx, be)
    code = ExitCode.OK if all(r["healthy"] for r in rows if not r["orphan"]) else ExitCode.UNHEALTHY
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, code, backend=be.name, nodes=rows))
    else:
        render.table(f"{ctx.topology.cluster} ({be.name})",
                     ["node", "role", "state", "healthy", "address", "detail"],
                     [line for r in rows for line in [
                         (r["name"], r["role"] + (" (orphan)" if r["orphan"] else ""), r["state"],
                          "yes" if r["healthy"] else "no", f"{r['host']}:{r['port']}", r["detail"]),
                         *((f"  {m['name']}", f"{m['ha_role'] or '-'} (group {m['group']})", m["state"], "",
                            f"{m['host']}:{m['port']}", f"timeline {m['timeline']}, lag {m['lag_bytes']} bytes")
                           for m in r.get("members", ()))]])
    raise typer.Exit(int(code))
