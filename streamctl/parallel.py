"""Work done at once, in one place: every item in parallel (`each`), or tasks that wait for the tasks they
need (`by_needs`), both with a limit on threads. The callers decide what an outcome means (a failure
that stops new work, an error to raise first); nothing here prints or retries."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """What one item gave: its value, or the exception it raised."""

    item: T
    value: R | None = None
    error: BaseException | None = None

    def get(self) -> R:
        """The value, or the exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def each(items: Sequence[T], fn: Callable[[T], R], limit: int | None = None) -> list[Outcome[T, R]]:
    """`fn` on every item, at most `limit` at a time (default: all at once). Every item runs to its end,
    whatever the others do; the outcomes come back in the items' order."""
    if not items:
        return []

    def guarded(item: T) -> Outcome[T, R]:
        try:
            return Outcome(item, fn(item))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which decides
            return Outcome(item, error=exc)

    with ThreadPoolExecutor(max_workers=max(1, min(len(items), limit or len(items)))) as pool:
        return list(pool.map(guarded, items))


def by_needs(count: int, needs: Sequence[Set[int]], fn: Callable[[int], R], limit: int,
             halt: Callable[[R], bool] = lambda _: False) -> dict[int, R]:
    """Tasks 0..count-1, each started as soon as every task in its `needs` has finished, at most `limit`
    at once. Once a result makes `halt` true, nothing new starts; the tasks already running finish. The
    results of the tasks that ran, by index (a task never started is absent). `fn` returns its failures
    as values: an exception it raises propagates once the running tasks are done."""
    results: dict[int, R] = {}
    waiting = list(range(count))
    with ThreadPoolExecutor(max_workers=max(1, min(count, limit))) as pool:
        running: dict[Future[R], int] = {}
        while True:
            if not any(halt(r) for r in results.values()):
                for i in [i for i in waiting if needs[i] <= results.keys()]:
                    waiting.remove(i)
                    running[pool.submit(fn, i)] = i
            if not running:
                return results
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                results[running.pop(fut)] = fut.result()
