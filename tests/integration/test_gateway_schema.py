"""Property-based run of schemathesis against the gateway's /openapi.json: no input yields a 5xx.

The gateway runs under a real uvicorn server; every operation gets a bounded number of generated
requests, so the run stays well under two minutes. Operations whose store the test topology disables
(reviews, when no mongod is installed) answer a documented 503 and are left out of the run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support.gateway import Dataset, served_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
MONGO = shutil.which("mongod") is not None
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Dataset]]:
    yield from served_cluster("gwschema", mongo=MONGO)


def _cases(op: Any, data: Dataset) -> Any:
    """Valid and invalid generated requests, plus valid ones aimed at ids that exist (so the success
    paths, the cache and the FDW joins are exercised, not only 404s)."""
    strategies = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
    if "{id}" in op.path:
        strategies += [op.as_strategy(path_parameters={"id": str(cid)}) for cid in list(data.content)[:2]]
    if "{userId}" in op.path:
        strategies.append(op.as_strategy(path_parameters={"userId": str(data.users[0])}))
    return st.one_of(*strategies)


def _server_errors(op: Any, base_url: str, data: Dataset) -> list[str]:
    """Run one operation's generated cases; return the ones answered with a server error."""
    failures: list[str] = []

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=_cases(op, data))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=30)
        # /health documents 503 as "a store is down"; every store is up here, so it must not happen either.
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} {case.query or ''} -> "
                            f"{response.status_code}: {response.text[:200]}")

    run()
    return failures


def test_no_input_produces_a_server_error(served: tuple[str, Dataset]) -> None:
    base_url, data = served
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    if not MONGO:
        operations = [op for op in operations if "reviews" not in (op.tags or [])]
    assert len(operations) >= 10  # the run covers the API, not an empty document
    failures = [f for op in operations for f in _server_errors(op, base_url, data)]
    assert not failures, "\n".join(failures[:20])
