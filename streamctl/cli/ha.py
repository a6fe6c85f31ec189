"""`switchover`: a planned change of a Citus group's leader under HA (Patroni does it; streamctl asks)."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, JsonOpt, StateDirOpt, load_context
from streamctl.cli.guard import WaitLockOpt, mutating
from streamctl.config.members import ha_groups
from streamctl.errors import NotFoundError, PreflightError
from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets


def switchover(group: Annotated[str, typer.Argument(help="The group: its node (coordinator, worker-1) or its "
                                                         "Citus group number (0 the coordinator).")],
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
    groups = ha_groups(ctx.topology)
    if not groups:
        raise PreflightError("switchover needs high availability, and the topology has no ha section",
                             hint="add an ha section (see examples/ha.yaml) and run `streamctl up`")
    chosen = next((g for g in groups if group in (g.node.name, str(g.number))), None)
    if chosen is None:
        raise NotFoundError(f"no HA group {group!r}",
                            hint="groups: " + ", ".join(f"{g.node.name} ({g.number})" for g in groups))
    assert ctx.topology.ha is not None
    with mutating(ctx, "switchover", wait_lock):
        done = rest.switchover(chosen, to, ha_secrets(ctx.store.root)["rest_password"],
                               ctx.ca_path() if ctx.tls_on else None, ctx.topology.ha.synchronous != "off")
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, 0, group=done.group, leader=done.leader,
                                          new_leader=done.new_leader, seconds=round(done.seconds, 3)))
        return
    render.line(f"{done.group}: {done.new_leader} leads (was {done.leader}), streaming again in "
                f"{done.seconds:.1f}s", "bold green")
