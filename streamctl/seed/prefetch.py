"""Run a generator on a background thread, a bounded number of items ahead of its consumer.

Generating COPY text (Python) then overlaps with sending it (libpq, which releases the GIL), and the
bound keeps memory flat when the server is slower than the generator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 3) -> Generator[T, None, None]:
    """Yield `items` in order, produced by a daemon thread at most `depth` items ahead.

    An exception in the producer is re-raised in the consumer; a consumer that stops early (error,
    cancellation) makes the producer stop at its next item.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Failure(exc))

    worker = threading.Thread(target=produce, name="streamctl-seed-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
