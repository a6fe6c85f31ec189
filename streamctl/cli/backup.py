"""`backup` (take a set), `backup list`, and `restore`: pgBackRest backups and point-in-time restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_backend, load_context
from streamctl.cli.guard import WaitLockOpt, mutating

app = typer.Typer(no_args_is_help=False)  # its help is the callback's docstring (with its example)


@app.callback(invoke_without_command=True)
def backup(typer_ctx: typer.Context, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
           kind: Annotated[Literal["full", "diff", "incr"], typer.Option(
               "--type", help="full, diff (changes since the last full) or incr (changes since the last "
                              "backup).")] = "full",
           label: Annotated[str | None, typer.Option(
               "--label", help="The set's name, also its restore point's (default: TYPE-UTCTIME).")] = None,
           wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Back up the whole platform to one restore point. Every PostgreSQL group in parallel, then one
    restore point named after the set (Citus's, across every node) and Redis's snapshot. A node that is
    down fails the backup, naming it.

    Example: streamctl backup --type full --label nightly-1
    """
    if typer_ctx.invoked_subcommand is not None:
        return
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.backup.take import take_backup

    ctx = load_context(file, state_dir)
    tool = PgBackRest(ctx, load_backend(ctx))
    with mutating(ctx, "backup", wait_lock):
        result = take_backup(tool, kind, label, emit=render.progress(verbose=True))
    if json_:
        render.print_json(result.to_json())
        return
    s = result.set
    render.line(f"backup set {s.label} ({s.type}) taken in {result.seconds:.1f}s: "
                f"{render.size(sum(n.size for n in s.nodes))} of data, "
                f"{render.size(sum(n.repo_size for n in s.nodes))} added to the repository; "
                f"restore point {s.point!r} at {s.point_time}", "bold green")


@app.command("list")
def list_(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False) -> None:
    """List the backup sets in the repository. Each with its time, type, size, restore points and the WAL it
    can reach.

    Example: streamctl backup list --json
    """
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.backup.take import list_sets

    ctx = load_context(file, state_dir)
    sets = list_sets(PgBackRest(ctx, load_backend(ctx)))
    if json_:
        render.print_json([s.to_json() for s in sets])
        return
    rows = []
    for s in sets:
        j = s.to_json()
        wal = ", ".join(f"{n['node']} {n['wal']['from'][-8:]}..{n['wal']['to'][-8:]}" for n in j["nodes"])
        rows.append((s.label, s.type, j["finished"], render.size(j["size"]), render.size(j["repo_size"]),
                     f"{s.point} ({s.point_time})" if s.point else "none: not restorable",
                     "yes" if s.redis else "no", wal))
    render.table(f"backups of {ctx.topology.cluster}", ["set", "type", "finished", "size", "in repository",
                                                        "restore point", "redis", "WAL (segments)"], rows)


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-04T17:30:00Z)",
                                 param_hint="--to") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def restore(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
            label: Annotated[str | None, typer.Option("--label", help="Restore this backup set.")] = None,
            point: Annotated[str | None, typer.Option("--point", help="Restore to this restore point.")] = None,
            to: Annotated[str | None, typer.Option(
                "--to", metavar="TIMESTAMP", help="Restore to the latest restore point at or before this ISO "
                                                  "time (UTC unless it says otherwise); the point is named.")]
            = None,
            into: Annotated[str | None, typer.Option(
                "--into", metavar="CLUSTER", help="The new cluster's name (default: CLUSTER-restored); its "
                                                  "topology is written as CLUSTER.yaml beside this file.")]
            = None,
            in_place: Annotated[bool, typer.Option("--in-place", help="Replace the running cluster's data "
                                                                      "(local and Docker; needs --yes).")]
            = False,
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm --in-place without asking.")] = False,
            timeout: Annotated[float, typer.Option(help="Seconds to wait for each node to be ready.")] = 120.0,
            wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Recover every group to one restore point, in a new cluster. Every PostgreSQL group, then Redis,
    into a NEW cluster beside the running one (own name, ports, secrets and stanzas; the original is only
    read), then verify it. With --in-place (local and Docker backends; refused on Swarm; asks or
    needs --yes): the cluster itself is stopped, its data kept aside (local: `*.before-restore-TIME`
    directories; Docker: `*-before-restore-TIME` volumes), recovered to the point, started and verified.

    Example: streamctl restore --point nightly-1 --into stage
    Example: streamctl restore --label s1 --in-place --yes
    Example: streamctl restore --to 2026-12-04T17:30:00Z --json
    """
    from streamctl.backup.restore import Selection, restore_into

    chosen = [x for x in (label, point, to) if x is not None]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --label, --point or --to")
    ctx = load_context(file, state_dir)
    selection = Selection(label, point, _timestamp(to))
    be = load_backend(ctx)
    if in_place:
        from streamctl.backup.in_place import refuse_unsupported, restore_in_place

        if into is not None:
            raise typer.BadParameter("--in-place restores this cluster; --into names a new one: give one of them")
        refuse_unsupported(ctx, be.name)  # before the lock and the question: nothing is touched
        if not yes:
            render.confirm_or_refuse(f"Replace the data of cluster {ctx.topology.cluster} with the restore "
                                     "point's? (the current data is kept aside)",
                                     what=f"`restore --in-place` stops cluster {ctx.topology.cluster} and "
                                          "replaces its data", flag="--yes")
    with mutating(ctx, "restore", wait_lock):
        if in_place:
            result = restore_in_place(ctx, be, selection, emit=render.progress(verbose=False),
                                      timeout=timeout)
        else:
            result = restore_into(ctx, be, selection, into, emit=render.progress(verbose=False), timeout=timeout)
    report_restore(result, json_)


def report_restore(result: object, json_: bool) -> None:
    from streamctl.backup.restore import RestoreResult

    assert isinstance(result, RestoreResult)
    if json_:
        render.print_json(result.to_json())
    else:
        render.note(result.chosen)
        where = f" (topology {result.topology_file}: pass it with -f)" if result.topology_file else ""
        render.line(f"cluster {result.cluster} restored in {result.seconds:.1f}s{where}", "bold green")
        for aside in result.kept_aside:
            render.note(f"the data it replaced is kept: {aside}; remove it once you are satisfied")
    if result.verify is not None and int(result.verify.exit_code) != 0:
        if not json_:
            bad = [r for r in result.verify.results if r.status.value not in ("passed", "skipped")]
            for r in bad:
                render.note(f"verify {r.check} {r.target}: {r.status.value}: {r.detail}")
        raise typer.Exit(int(result.verify.exit_code))
