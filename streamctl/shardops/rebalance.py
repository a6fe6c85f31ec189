"""`shards rebalance`: Citus's plan shown before anything runs, the background job run with progress,
waited for and checked, and its status or cancellation for a job left running by Ctrl-C."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from streamctl.citus import jobs as citus_jobs
from streamctl.citus import placement
from streamctl.citus import rebalance as citus_rebalance
from streamctl.citus.jobs import JobProgress
from streamctl.citus.nodes import coordinator_conn
from streamctl.citus.placement import citus_errors
from streamctl.citus.rebalance import PlannedMove
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError
from streamctl.events import Emit, ignore
from streamctl.shardops.common import Checked, MoveOptions, Nodes, integrity_after, integrity_before


@dataclass(frozen=True)
class MoveView:
    """One planned move as ops read it: topology node names, exact rows, bytes."""

    table: str
    shard_id: int
    source: str
    target: str
    rows: int
    bytes: int


@dataclass
class RebalancePlan:
    moves: list[MoveView] = field(default_factory=list)
    provision: list[str] = field(default_factory=list)  # workers `scale` would add first
    remove: list[str] = field(default_factory=list)  # workers `scale` would drain and remove

    @property
    def groups(self) -> int:
        """Shard groups moved (each move carries every colocated shard)."""
        return len({(m.source, m.target, m.shard_id) for m in self.moves if m.table == self._anchor()})

    def _anchor(self) -> str:
        return self.moves[0].table if self.moves else ""

    def to_json(self) -> dict[str, Any]:
        return {"provision": self.provision, "remove": self.remove, "shard_groups": self.groups,
                "rows": sum(m.rows for m in self.moves), "bytes": sum(m.bytes for m in self.moves),
                "moves": [vars(m) for m in self.moves]}


@dataclass
class RebalanceResult(Checked):
    job_id: int | None
    progress: JobProgress | None

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "moves": self.progress.moves_total if self.progress else 0,
                "bytes": self.progress.bytes_total if self.progress else 0, "rows": self.rows,
                "seconds": round(self.seconds, 2)}


def describe(conn: Connection[Any], nodes: Nodes, moves: list[PlannedMove]) -> list[MoveView]:
    """Name the nodes and count each moving shard's rows exactly."""
    by_table: dict[str, list[PlannedMove]] = defaultdict(list)
    for m in moves:
        by_table[m.table].append(m)
    counts = {t: placement.shard_rows(conn, t) for t in by_table}
    return [MoveView(m.table, m.shard_id, nodes.name(m.source), nodes.name(m.target),
                     counts[m.table].get(m.shard_id, 0), m.bytes) for m in moves]


def plan_rebalance(ctx: ClusterContext) -> RebalancePlan:
    """What `shards rebalance` would move now, from Citus's own planner; changes nothing."""
    nodes = Nodes(ctx)
    with coordinator_conn(ctx) as conn, citus_errors("reading Citus's rebalance plan failed"):
        return RebalancePlan(describe(conn, nodes, citus_rebalance.plan(conn)))


def rebalance(ctx: ClusterContext, options: MoveOptions, emit: Emit | None = None) -> RebalanceResult:
    """Rebalance every colocation group in the background, with progress; rows and checksums are compared."""
    say: Emit = emit or ignore
    started = time.monotonic()
    with coordinator_conn(ctx) as conn, citus_errors("the rebalance failed"):
        before = integrity_before(conn)
        progress = citus_jobs.run_job(conn, say, options.transfer_mode, options.parallel)
        rows = integrity_after(conn, before)
    return RebalanceResult(progress.job_id if progress else None, progress, rows=rows,
                           seconds=time.monotonic() - started)


def status(ctx: ClusterContext) -> JobProgress:
    """The latest rebalance job's state and progress."""
    with coordinator_conn(ctx) as conn, citus_errors("reading the rebalance job failed"):
        job = citus_jobs.latest_job(conn)
        if job is None:
            raise NotFoundError("this cluster has never run a rebalance")
        return citus_jobs.progress(conn, job)


def cancel(ctx: ClusterContext) -> JobProgress:
    """Cancel the running rebalance: moves done stay done, the rest are not started (citus_job_cancel)."""
    with coordinator_conn(ctx) as conn, citus_errors("cancelling the rebalance failed"):
        job = citus_jobs.active_job(conn)
        if job is None:
            raise NotFoundError("no rebalance is running", hint="see `streamctl shards rebalance status`")
        citus_jobs.cancel(conn, job)
        return citus_jobs.progress(conn, job)
