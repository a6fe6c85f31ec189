"""`shards move SHARD --to NODE`: one shard group moved by Citus, checked before and after."""

from __future__ import annotations

import time
from dataclasses import dataclass

from streamctl.citus import placement
from streamctl.citus.nodes import coordinator_conn
from streamctl.citus.placement import citus_errors
from streamctl.context import ClusterContext
from streamctl.errors import Interrupted, NotFoundError
from streamctl.events import Emit, Event, ignore
from streamctl.shardops.common import Checked, MoveOptions, Nodes, integrity_after, integrity_before


@dataclass
class MoveResult(Checked):
    shard_id: int
    source: str
    target: str
    shards: list[str]  # table:shard of the group that moved
    bytes: int
    moved: bool


def move_shard(ctx: ClusterContext, shard_id: int, to: str, options: MoveOptions,
               emit: Emit | None = None) -> MoveResult:
    """Move shard `shard_id` and its colocated shards to worker `to`; already there: nothing to do."""
    say: Emit = emit or ignore
    started = time.monotonic()
    nodes = Nodes(ctx)
    target = nodes.address(to)  # unknown node: an error before anything is looked at
    with coordinator_conn(ctx) as conn, citus_errors(f"moving shard {shard_id} to {to} failed"):
        group = placement.shard_group(conn, shard_id)
        if target not in placement.shard_nodes(conn):
            raise NotFoundError(f"{to} is not an active worker that may hold shards",
                                hint="see `streamctl verify --only citus.workers`")
        source = group[0].node
        members = [f"{p.table}:{p.shard_id}" for p in group]
        size = sum(p.bytes for p in group)
        result = MoveResult(shard_id, nodes.name(source), to, members, size, False)
        if source == target:
            say(Event("noop", "coordinator", "move", f"shard {shard_id} is already on {to}"))
            result.seconds = time.monotonic() - started
            return result
        before = integrity_before(conn)
        say(Event("begin", "coordinator", "move", f"shard group {shard_id} ({len(group)} shards, "
                  f"{size / 1048576:.1f} MB) {result.source} -> {to}, transfer mode {options.transfer_mode}"))
        try:
            placement.move(conn, shard_id, source, target, options.transfer_mode)
        except KeyboardInterrupt:
            raise Interrupted(f"the move of shard {shard_id} was cancelled: Citus rolls it back, its "
                              f"placements stay on {result.source}",
                              hint=f"check with `streamctl shards --table {group[0].table}`") from None
        result.moved = True
        result.rows = integrity_after(conn, before)
    result.seconds = time.monotonic() - started
    say(Event("done", "coordinator", "move", f"shard group {shard_id} now on {to}", result.seconds))
    return result
