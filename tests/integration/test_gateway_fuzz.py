"""Schemathesis, every check and every phase (stateful included, following the document's links),
against a seeded cluster served by a real uvicorn: no failure of any kind.

Runs the `st` command line of the venv, so the run is the one a user would make. Operations whose
store the test topology disables (reviews, without a MongoDB server) answer their documented 503;
only for those operations is 503 an accepted answer (any other 5xx still fails the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Dataset, served_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ST = Path(sys.executable).with_name("st")
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2XX", "404"]

[[operations]]
include-tag = "reviews"
checks.positive_data_acceptance.expected-statuses = ["2XX", "404", "503"]
checks.not_a_server_error.expected-statuses = ["1XX", "2XX", "3XX", "4XX", "503"]
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Dataset]]:
    yield from served_cluster("gwfuzz", mongo=False)


def test_schemathesis_finds_no_failure(served: tuple[str, Dataset], tmp_path: Path) -> None:
    base_url, _data = served
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    examples = os.environ.get("STREAMCTL_FUZZ_EXAMPLES", "25")
    cmd = [str(ST), "--no-color", "--config-file", str(config), "run", f"{base_url}/openapi.json", "--checks", "all",
           "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", examples, "--seed", "1",
           "--request-timeout", "30", "--warnings", "off"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "stateful" in run.stdout.lower(), report  # the stateful phase ran, not only the others
