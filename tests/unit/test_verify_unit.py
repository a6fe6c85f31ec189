"""verify without engines: check selection, exit-code precedence, the JSON schema, chunk labels, skew."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamctl.citus.shards import NodeSpread, TableSpread
from streamctl.errors import ExitCode, NotFoundError
from streamctl.verify.checksum import Chunk
from streamctl.verify.registry import CHECKS, select
from streamctl.verify.result import CheckResult, Status, failed, guarded
from streamctl.verify.runner import VerifyReport
from streamctl.verify.schema import VERIFY_JSON_SCHEMA
from tests.support.schema import problems


def _report(*statuses: Status) -> VerifyReport:
    return VerifyReport("c", [CheckResult("nodes.reachable", f"n{i}", s, "x", 0.1, {"k": 1})
                              for i, s in enumerate(statuses)], 0.5)


def test_select_by_name_and_family() -> None:
    assert [c.name for c in select(["citus"])] == ["citus.workers", "citus.placements", "citus.distribution",
                                                    "citus.skew"]
    assert [c.name for c in select(["replication.lag,nodes"])] == ["nodes.reachable", "replication.lag"]
    assert len(select(None)) == len(CHECKS)


def test_select_refuses_unknown_names() -> None:
    with pytest.raises(NotFoundError, match="unknown check replicaton"):
        select(["replicaton"])


@pytest.mark.parametrize(("statuses", "code"), [
    ((Status.PASSED, Status.SKIPPED), ExitCode.OK),
    ((Status.PASSED, Status.ERROR), ExitCode.CHECK_ERROR),
    ((Status.FAILED, Status.PASSED), ExitCode.CHECK_FAILED),
    ((Status.ERROR, Status.FAILED), ExitCode.CHECK_FAILED),  # a proven defect wins over "could not run"
])
def test_exit_code_precedence(statuses: tuple[Status, ...], code: ExitCode) -> None:
    assert _report(*statuses).exit_code is code


def test_report_json_follows_schema() -> None:
    doc = _report(Status.PASSED, Status.FAILED, Status.SKIPPED).to_json()
    assert problems(doc, VERIFY_JSON_SCHEMA) == []
    assert doc["summary"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}
    assert doc["ok"] is False and doc["exit_code"] == 8


def test_schema_checker_catches_a_bad_document() -> None:
    doc = _report(Status.PASSED).to_json()
    doc["checks"][0]["status"] = "fine"
    del doc["summary"]
    found = problems(doc, VERIFY_JSON_SCHEMA)
    assert any("missing summary" in p for p in found) and any("'fine'" in p for p in found)


def test_guarded_turns_exceptions_into_errors() -> None:
    def boom() -> None:
        raise RuntimeError("connection refused\nmore")

    res = guarded("x", "t", boom)  # type: ignore[arg-type]
    assert res.status is Status.ERROR and res.detail == "connection refused"
    assert guarded("x", "t", lambda: failed("bad", n=1)).data == {"n": 1}


def test_chunk_label_names_the_range() -> None:
    assert Chunk(None, (5,)).label(["id"]) == "(id) in (∞ .. 5]"
    assert Chunk((5, "a"), None).label(["a", "b"]) == "(a, b) in (5, a .. ∞]"


def test_skew_counts_nodes_without_shards() -> None:
    spread = TableSpread("t", "distributed", "content_id", 1, 4, 400, 0,
                         [NodeSpread("worker-1", 4, 400), NodeSpread("worker-2", 0, 0)],
                         {1: 100, 2: 100, 3: 150, 4: 50})
    assert spread.node_skew == pytest.approx(2.0)
    assert spread.shard_skew == pytest.approx(1.5)
    ref = TableSpread("g", "reference", None, 2, 1, 10, 0, [], {9: 10})
    assert ref.shard_skew is None and ref.node_skew is None


def test_unbounded_slot_wal_fails_only_where_streamctl_sets_the_bound() -> None:
    from streamctl.verify.replication import _wal_limit

    assert _wal_limit("-1", "4GB", external=False).status is Status.FAILED  # `up` should have set it
    assert _wal_limit("-1", "4GB", external=True).status is Status.PASSED  # its administrator's choice
    assert _wal_limit("-1", "-1", external=False).status is Status.PASSED  # asked for in the topology
    assert _wal_limit("4GB", "4GB", external=False).detail == "max_slot_wal_keep_size 4GB"



def test_heavy_checks_start_first_and_results_keep_the_registry_order(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """The quick checks wait for both heavy ones to have started: were the heavy ones submitted after the
    quick ones, the pool (6 threads) would be full of waiting quick checks and the wait would time out."""
    import threading

    from streamctl.verify import runner
    from streamctl.verify.registry import CheckSpec
    from streamctl.verify.result import passed

    lock, heavy_running, both_heavy = threading.Lock(), [0], threading.Event()
    quick_saw_both: list[bool] = []

    def spec(name: str, heavy: bool = False) -> CheckSpec:
        def run(_ctx: object) -> list[CheckResult]:
            if heavy:
                with lock:
                    heavy_running[0] += 1
                    if heavy_running[0] == 2:
                        both_heavy.set()
            else:
                quick_saw_both.append(both_heavy.wait(timeout=5))
            return [guarded(name, "-", lambda: passed("ok"))]
        return CheckSpec(name, name, run, heavy=heavy)

    specs = [spec(f"quick.{i}") for i in range(8)] + [spec("heavy.a", True), spec("heavy.b", True)]
    monkeypatch.setattr(runner, "select", lambda _only: specs)
    monkeypatch.setattr(runner.last, "store", lambda *_a: None)

    class Store:
        root = tmp_path

        def exists(self) -> bool:
            return True

    class Topology:
        cluster = "c"

        def nodes(self) -> list[object]:
            return []

    class Ctx:
        store, topology = Store(), Topology()

    report = runner.run_checks(Ctx())  # type: ignore[arg-type]
    assert [r.check for r in report.results] == [s.name for s in specs]
    assert quick_saw_both == [True] * 8
    assert {c.name for c in CHECKS if c.heavy} == {"replication.data", "citus.skew", "fdw.counts"}
