"""streamctl.parallel: every item runs to its end; tasks start when what they need is done; a halt stops
new work but lets the running tasks finish."""

from __future__ import annotations

import threading
import time

import pytest

from streamctl import parallel


def test_each_runs_every_item_and_keeps_their_order_and_errors() -> None:
    def fn(i: int) -> int:
        if i == 2:
            raise ValueError("two")
        time.sleep(0.01 * (5 - i))  # later items finish first
        return i * 10

    outcomes = parallel.each([0, 1, 2, 3, 4], fn)
    assert [o.item for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.value for o in outcomes if o.error is None] == [0, 10, 30, 40]
    assert isinstance(outcomes[2].error, ValueError)
    with pytest.raises(ValueError, match="two"):
        outcomes[2].get()
    assert parallel.each([], fn) == []


def test_each_respects_the_limit() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def fn(_: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    parallel.each(list(range(8)), fn, limit=3)
    assert 1 <= peak[0] <= 3


def test_by_needs_starts_a_task_only_after_what_it_needs() -> None:
    finished: list[int] = []
    needs = [set(), {0}, {0}, {1, 2}]

    def fn(i: int) -> int:
        assert needs[i] <= set(finished), (i, finished)
        time.sleep(0.01)
        finished.append(i)
        return i

    assert parallel.by_needs(4, needs, fn, limit=4) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert finished[0] == 0 and finished[-1] == 3


def test_by_needs_halts_new_work_after_a_failure_but_finishes_the_running() -> None:
    gate = threading.Event()

    def fn(i: int) -> str:
        if i == 0:
            return "failed"
        if i == 1:  # runs beside task 0, still finishes
            gate.wait(1)
            return "ok"
        return "ok"  # task 2 needs 0: never started

    results = parallel.by_needs(3, [set(), set(), {0}], fn, limit=2, halt=lambda r: r == "failed")
    gate.set()
    assert results == {0: "failed", 1: "ok"}
