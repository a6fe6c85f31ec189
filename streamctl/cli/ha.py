"""`switchover` and `failover`: a change of a Citus group's leader under HA, planned or forced; `reinit`: a
standby cloned again from its leader (Patroni does each; streamctl asks)."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, JsonOpt, StateDirOpt, load_context
from streamctl.cli.guard import WaitLockOpt, mutating
from streamctl.config.members import Group, ha_groups
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError, PreflightError
from streamctl.ha import asks
from streamctl.ha.secrets import ha_secrets

GroupArg = Annotated[str, typer.Argument(help="The group: its node (coordinator, worker-1, analytics-primary) or "
                                              "its Citus group number (0 the coordinator).")]


def _group(ctx: ClusterContext, group: str, command: str) -> Group:
    groups = ha_groups(ctx.topology, ctx.store.pinned())
    if not groups:
        raise PreflightError(f"{command} needs high availability, and the topology has no ha section",
                             hint="add an ha section (see examples/ha.yaml) and run `streamctl up`")
    chosen = next((g for g in groups if group in (g.node.name, str(g.number) if g.citus else g.node.name)), None)
    if chosen is None:
        raise NotFoundError(f"no HA group {group!r}",
                            hint="groups: " + ", ".join(g.node.name + (f" ({g.number})" if g.citus else "")
                                                        for g in groups))
    return chosen


def _change(ctx: ClusterContext, group: Group, to: str | None, command: str, wait_lock: float | None,
            json_: bool) -> None:
    """Ask Patroni for the change under the cluster's lock, then report the new leader."""
    assert ctx.topology.ha is not None
    ask = asks.failover if command == "failover" else asks.switchover
    with mutating(ctx, command, wait_lock):
        done = ask(group, to, ha_secrets(ctx.store.root)["rest_password"], ctx.ca_path() if ctx.tls_on else None,
                   ctx.topology.ha.synchronous != "off")
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, 0, group=done.group, leader=done.leader,
                                          new_leader=done.new_leader, seconds=round(done.seconds, 3)))
        return
    render.line(f"{done.group}: {done.new_leader} leads (was {done.leader or 'no leader'}), streaming again in "
                f"{done.seconds:.1f}s", "bold green")


def switchover(group: GroupArg,
               to: Annotated[str | None, typer.Option("--to", help="The member to lead (default: the standby "
                                                                   "Patroni picks), e.g. worker-1-2.")] = None,
               file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
               wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Hand a group's leadership to one of its standbys. Planned: Patroni pauses the coordinator's traffic to
    a worker group meanwhile; returns when the group is led and streaming again. Needs the topology's ha
    section.

    Example: streamctl switchover worker-1 --to worker-1-2
    """
    ctx = load_context(file, state_dir, backend)
    _change(ctx, _group(ctx, group, "switchover"), to, "switchover", wait_lock, json_)


def failover(group: GroupArg,
             to: Annotated[str | None, typer.Option("--to", help="The member to promote (default: the sync "
                                                                 "standby, else the least behind), e.g. "
                                                                 "worker-1-2.")] = None,
             yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking.")] = False,
             file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
             wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Force one of a group's standbys to lead, asking first. Whether the leader is healthy or not (--yes
    confirms without asking); unlike switchover, Patroni does not wait for the leader: without a synchronous
    standby, writes not yet streamed are lost. Returns when the group is led and its running members stream again.
    Needs the topology's ha section.

    Example: streamctl failover worker-1
    Example: streamctl failover worker-1 --to worker-1-2 --yes --json
    """
    ctx = load_context(file, state_dir, backend)
    chosen = _group(ctx, group, "failover")
    if not yes:
        render.confirm_or_refuse(f"Force a failover of {chosen.node.name}?",
                                 what=f"`failover` forces a new leader on {chosen.node.name}", flag="--yes")
    _change(ctx, chosen, to, "failover", wait_lock, json_)


def reinit(member: Annotated[str, typer.Argument(help="The standby to clone again, e.g. worker-1-2.")],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking.")] = False,
           file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
           wait_lock: WaitLockOpt = None, json_: JsonOpt = False) -> None:
    """Clone a standby again from its group's leader.

    Asks first: its data directory is removed and a new base backup taken (Patroni's reinitialize).

    For a member whose PostgreSQL no longer starts (`status`: "start failed"), e.g. an old leader whose
    rewind was interrupted. Refused for the leader. Returns when it streams again.

    Example: streamctl reinit worker-1 --yes
    """
    ctx = load_context(file, state_dir, backend)
    groups = ha_groups(ctx.topology, ctx.store.pinned())
    chosen = next((g for g in groups if any(m.name == member for m in g.members)), None)
    if chosen is None:
        _group(ctx, "", "reinit")  # no ha section: refused with its hint
        raise NotFoundError(f"no HA member {member!r}",
                            hint="members: " + ", ".join(m.name for g in groups for m in g.members))
    if not yes:
        render.confirm_or_refuse(f"Remove {member}'s data and clone it again from {chosen.node.name}'s leader?",
                                 what=f"`reinit` removes {member}'s data directory", flag="--yes")
    with mutating(ctx, "reinit", wait_lock):
        seconds = asks.reinitialize(chosen, member, ha_secrets(ctx.store.root)["rest_password"],
                                    ctx.ca_path() if ctx.tls_on else None)
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, 0, member=member, group=chosen.node.name,
                                          seconds=round(seconds, 3)))
        return
    render.line(f"{member}: cloned again from {chosen.node.name}'s leader, streaming in {seconds:.1f}s", "bold green")
