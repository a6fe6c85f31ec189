"""Moving shards with Citus's rebalancer: its own plan (dry runs, also as if workers were added or
drained), draining and unregistering nodes. The background job that carries the moves is jobs.py."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection

from streamctl.citus import catalog
from streamctl.citus.catalog import Address
from streamctl.citus.jobs import run_job
from streamctl.citus.placement import citus_errors
from streamctl.errors import RefusedError
from streamctl.events import Emit, Event

TRANSFER_MODES = ("auto", "force_logical", "block_writes")

PLAN_SQL = """
SELECT p.table_name::text, p.shardid, p.sourcename, p.sourceport, p.targetname, p.targetport,
       coalesce((SELECT max(s.shard_size) FROM citus_shards s WHERE s.shardid = p.shardid), 0)
FROM get_rebalance_table_shards_plan(drain_only => %s) p
"""


@dataclass(frozen=True)
class PlannedMove:
    """One shard placement move exactly as Citus's planner lists it (hosts as Citus registered them)."""

    table: str
    shard_id: int
    source: tuple[str, int]
    target: tuple[str, int]
    bytes: int


def _moves(rows: list[tuple[Any, ...]]) -> list[PlannedMove]:
    return [PlannedMove(str(r[0]), int(r[1]), (str(r[2]), int(r[3])), (str(r[4]), int(r[5])), int(r[6]))
            for r in rows]


def plan(conn: Connection[Any], drain_only: bool = False) -> list[PlannedMove]:
    """The moves `citus_rebalance_start` would schedule now (one row per colocated shard)."""
    return _moves(conn.execute(PLAN_SQL, (drain_only,)).fetchall())


def plan_with_new_nodes(conn: Connection[Any], addresses: list[tuple[str, int]]) -> list[PlannedMove]:
    """Citus's plan as if these workers were registered and active: they are added inside a transaction
    that is always rolled back (inactive nodes need no connection), so nothing changes."""
    with conn.transaction(force_rollback=True):
        for host, port in addresses:
            conn.execute("SELECT citus_add_inactive_node(%s, %s)", (host, port))
            conn.execute("UPDATE pg_dist_node SET isactive = true WHERE nodename = %s AND nodeport = %s",
                         (host, port))
        return plan(conn)


def plan_drain(conn: Connection[Any], addresses: list[tuple[str, int]]) -> list[PlannedMove]:
    """Citus's drain plan as if these workers no longer held shards (rolled back, nothing changes)."""
    with conn.transaction(force_rollback=True):
        for host, port in addresses:
            conn.execute("SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', false)", (host, port))
        return plan(conn, drain_only=True)


def drain(conn: Connection[Any], leaving: dict[Address, str], emit: Emit, transfer_mode: str = "auto",
          parallel: int = 1) -> int:
    """Move every distributed shard off the leaving nodes (address -> name) and check none is left;
    returns the moves made. Raises RefusedError, with nothing removed, when a node still holds shards."""
    with citus_errors("Citus did not mark the leaving workers for draining"):
        for address in leaving:
            catalog.stop_placing_shards(conn, address)
    job = run_job(conn, emit, transfer_mode, parallel, drain_only=True)
    for address, name in leaving.items():
        left = catalog.distributed_placements_on(conn, address)
        if left:
            raise RefusedError(f"{name} still holds {left} shard placements after draining",
                               hint="see `streamctl shards rebalance status`; nothing was removed")
    return job.moves_total if job else 0


def unregister(conn: Connection[Any], leaving: dict[Address, str], emit: Emit) -> None:
    """Remove drained nodes from the coordinator (their reference-table copies go with them)."""
    # Moves leave source shards for Citus's deferred cleanup; do it now, so the maintenance daemon does
    # not delete the same catalog rows as citus_remove_node ("tuple concurrently deleted").
    conn.execute("CALL citus_cleanup_orphaned_resources()")
    for (host, port), name in leaving.items():
        with citus_errors(f"Citus did not remove {name} ({host}:{port})",
                          hint="a worker must hold no shards before it is removed: `streamctl scale` drains "
                               "it first (run it again to finish); see `streamctl shards`"):
            for attempt in range(3):
                try:
                    catalog.remove_node(conn, (host, port))
                    break
                except psycopg.errors.InternalError:
                    if attempt == 2:
                        raise
                    conn.execute("CALL citus_cleanup_orphaned_resources()")
        emit(Event("done", name, "unregister", f"removed from the coordinator ({host}:{port})"))
    forget_removed_connections(conn)


# Citus's maintenance daemon keeps a connection to each worker it checks (distributed deadlock detection),
# also after the worker is removed. A worker registered again under the same name and port is reached
# through that stale connection: the old server's goodbye is read, Citus sends a cancel to the old address
# (a blocking connect) and the daemon, which also starts background jobs, hung 20 to 75 s on a Swarm
# (error 113, no route to the removed task), so the next rebalance's first move waited as long. Ended here,
# the daemon is started again by the next session that uses Citus, with no connection to removed workers.
DAEMON_SQL = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
              "AND backend_type LIKE 'Citus Maintenance Daemon%'")


def forget_removed_connections(conn: Connection[Any]) -> None:
    """Best effort: a role that may not signal the daemon (an external coordinator's) leaves it as it is."""
    with suppress(psycopg.Error):
        conn.execute(DAEMON_SQL)
