"""`up` as CI sees it (output not a terminal): exactly one line per finished step, with its time."""

from __future__ import annotations

import re
import shutil

import pytest

from streamctl.config.load import load_topology
from tests.support.cli import streamctl
from tests.support.cluster import traversable_tmpdir, write_topology

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

STEP = re.compile(r"^✓ (?P<node>\S+)\s+(?P<step>.+?)\s{2,}.*\((?P<secs>\d+\.\d)s\)$")


def test_up_prints_one_line_per_finished_step_when_not_a_terminal() -> None:
    directory = traversable_tmpdir()
    path = write_topology(directory, cluster="ci-log")
    try:
        res = streamctl("up", "-f", str(path))
        assert res.returncode == 0, res.stderr
        lines = res.stderr.splitlines()
        steps = [STEP.match(line) for line in lines]
        assert all(steps), [line for line, m in zip(lines, steps, strict=True) if not m]  # no "running" lines
        pairs = [(m["node"], m["step"].strip()) for m in steps if m]
        assert len(pairs) == len(set(pairs)), pairs  # no step twice
        nodes = {n for n, s in pairs if s == "create"}
        expected = {n.name for n in load_topology(path).nodes()}
        assert nodes == expected
        configured = [p for p in pairs if p[1] != "create"]
        assert len(configured) >= len(expected)  # at least each node's database
        assert res.stdout.strip().startswith("cluster ci-log is up")
        again = streamctl("up", "-f", str(path))  # nothing to do: one line per node, nothing else
        assert again.returncode == 0 and len(again.stderr.splitlines()) == len(expected), again.stderr
    finally:
        streamctl("down", "--volumes", "--yes", "-f", str(path))
        shutil.rmtree(directory, ignore_errors=True)


