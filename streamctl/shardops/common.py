"""What every shard operation shares: node names both ways, the move options, the integrity check, the
per-cluster lock's call site and Ctrl-C deferred while the cluster's registration changes."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from streamctl.citus import placement
from streamctl.citus.nodes import node_names
from streamctl.citus.rebalance import TRANSFER_MODES
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError, RefusedError


@dataclass(frozen=True)
class MoveOptions:
    """How shards travel: Citus's transfer mode, and how many moves may involve one node at a time."""

    transfer_mode: str = "auto"
    parallel: int = 1

    def __post_init__(self) -> None:
        if self.transfer_mode not in TRANSFER_MODES:
            raise RefusedError(f"unknown transfer mode {self.transfer_mode!r}",
                               hint=f"use one of {', '.join(TRANSFER_MODES)}")
        if not 1 <= self.parallel <= 16:
            raise RefusedError(f"--parallel must be between 1 and 16, not {self.parallel}")


@dataclass(kw_only=True)
class Checked:
    """What every shard operation reports beside its own fields: the rows of each Citus table after it
    (compared with before, `integrity_after`) and the seconds it took. As JSON: its own fields, then these."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        own = {k: v for k, v in vars(self).items() if k not in ("rows", "seconds")}
        return {**own, "rows": self.rows, "seconds": round(self.seconds, 2)}


class Nodes:
    """Topology node names <-> the (host, port) Citus registered them under."""

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.by_address = node_names(ctx.store.endpoints(), ctx.topology)

    def name(self, address: tuple[str, int]) -> str:
        return self.by_address.get(address, f"{address[0]}:{address[1]}")

    def address(self, name: str) -> tuple[str, int]:
        workers = [n.name for n in self.ctx.topology.nodes_by_role(Role.WORKER)]
        if name not in workers:
            raise NotFoundError(f"unknown worker {name!r}", hint=f"workers: {', '.join(workers) or 'none'}")
        ep = self.ctx.endpoint(name)
        return ep.internal_host, ep.internal_port


def integrity_before(conn: Connection[Any]) -> dict[str, placement.TableSum]:
    return placement.table_sums(conn)


def integrity_after(conn: Connection[Any], before: dict[str, placement.TableSum]) -> dict[str, int]:
    """Compare every Citus table's rows and checksum with `before`; a difference is an error."""
    after = placement.table_sums(conn)
    changed = [f"{t}: rows {before[t].rows if t in before else '-'} -> {after[t].rows if t in after else '-'}"
               + ("" if t not in before or t not in after or before[t].rows != after[t].rows
                  else ", checksum differs")
               for t in sorted(set(before) | set(after)) if before.get(t) != after.get(t)]
    if changed:
        raise RefusedError("rows changed while shards moved", details=changed,
                           hint="run `streamctl verify` and inspect the listed tables")
    return {t: s.rows for t, s in after.items()}


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so registering or unregistering a node is never left half done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
