"""COPY text formatting and the bounded prefetch that feeds the loaders."""

from __future__ import annotations

import threading

import pytest

from streamctl.seed import copyfmt
from streamctl.seed.prefetch import prefetch


def test_escaped_line_follows_copy_text_rules() -> None:
    line = copyfmt.escaped_line(("a\tb", None, "back\\slash", "two\nlines\r", 3, True, 1.5))
    assert line == "a\\tb\t\\N\tback\\\\slash\ttwo\\nlines\\r\t3\tt\t1.5\n"


def test_trusted_line_is_a_plain_pattern() -> None:
    assert copyfmt.trusted_line("%s\t%d\n")(("x", 7)) == "x\t7\n"


def test_chunks_keep_every_row_and_count_it() -> None:
    batches = copyfmt.batched(((i, f"row {i}") for i in range(10_000)), size=333)
    chunks = list(copyfmt.chunks(batches, copyfmt.escaped_line, target_bytes=4096))
    assert len(chunks) > 10
    assert sum(n for n, _ in chunks) == 10_000
    lines = "".join(text for _, text in chunks).splitlines()
    assert lines[0] == "0\trow 0" and lines[-1] == "9999\trow 9999" and len(lines) == 10_000
    assert all(n == text.count("\n") for n, text in chunks)


def test_prefetch_preserves_order_and_reraises_producer_errors() -> None:
    assert list(prefetch(range(100), depth=2)) == list(range(100))

    def broken() -> object:
        yield 1
        raise RuntimeError("generator failed")

    out = prefetch(broken())
    assert next(out) == 1
    with pytest.raises(RuntimeError, match="generator failed"):
        next(out)


def test_prefetch_stays_bounded_and_stops_when_the_consumer_leaves() -> None:
    produced: list[int] = []
    stopped = threading.Event()

    def endless() -> object:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            stopped.set()

    out = prefetch(endless(), depth=3)
    assert next(out) == 0
    out.close()
    assert stopped.wait(5)  # the producer thread ended instead of running forever
    assert len(produced) <= 6  # it never ran more than the queue's depth ahead
