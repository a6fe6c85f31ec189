"""Around every mutating command (up, down, seed, scale, shard operations): the cluster lock, with a
message while waiting, and a Ctrl-C report of what was done and which command finishes the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streamctl.cli import render
from streamctl.errors import Interrupted

if TYPE_CHECKING:
    from streamctl.context import ClusterContext

WaitLockOpt = Annotated[float | None, typer.Option(
    "--wait-lock", metavar="SECONDS", min=0,
    help="How long to wait while another streamctl command changes this cluster (0: fail at once with "
         "exit code 11; default: as long as it takes).")]


class StepLog:
    """Passes runner events on and remembers the finished ones, for the report after Ctrl-C."""

    def __init__(self, emit: Callable[[Any], None] | None) -> None:
        self.emit = emit
        self.done: list[str] = []

    def __call__(self, ev: Any) -> None:
        if ev.kind == "done":
            self.done.append(f"{ev.node}: {ev.step}" + (f" ({ev.detail})" if ev.detail else ""))
        if self.emit is not None:
            self.emit(ev)


@contextmanager
def mutating(ctx: ClusterContext, command: str, wait_lock: float | None,
             steps: StepLog | None = None) -> Iterator[None]:
    """Hold the cluster's lock while the block runs; Ctrl-C becomes Interrupted (exit 130)."""
    from streamctl.lock import ClusterLock

    cluster = ctx.topology.cluster

    def waiting(holder: str) -> None:
        limit = "" if wait_lock is None else f" (up to {wait_lock:g}s)"
        render.note(f"waiting for the lock on cluster {cluster}{limit}: held by "
                    f"{holder or 'another streamctl command'}")

    try:
        lock = ClusterLock(ctx.store.root, command, cluster).acquire(wait_lock, waiting)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while waiting for the lock on cluster {cluster}",
                                details=["nothing was changed"]) from None
    with lock:
        if lock.waited:
            render.note(f"waited {lock.waited:.1f}s for the lock on cluster {cluster}")
        try:
            yield
        except KeyboardInterrupt:
            done = steps.done if steps is not None else []
            raise Interrupted(
                f"interrupted: `{command}` stopped before it finished",
                details=[f"done: {d}" for d in done] or ["no step had finished"],
                hint=f"run `streamctl {command}` again: it finishes what was left") from None
