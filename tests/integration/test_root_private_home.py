"""The README's first command as root from a clone inside a 0700 directory (like /root): node data goes
where the PostgreSQL user can reach it, said once; `down --volumes` leaves nothing; no permission changes."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from streamctl.backends.local.data_home import DATA_ROOT, relocated_path
from tests.support import REPO
from tests.support.cli import streamctl
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.skipif(os.geteuid() != 0, reason="runs the README's first command as root")]


def private_clone() -> tuple[Path, Path]:
    """A 0700 home holding a copy of the example, on fresh ports and its own cluster name."""
    home = Path(tempfile.mkdtemp(prefix="streamctl-root-home-"))  # mkdtemp makes it 0700
    clone = home / "streamctl"
    (clone / "examples").mkdir(parents=True)
    data = yaml.safe_load((REPO / "examples" / "no-citus.yaml").read_text())
    data["cluster"] = f"roothome-{os.getpid()}"
    data["metadata"]["coordinator"]["port"] = free_port()
    data["analytics"]["primary"]["port"] = free_port()
    for replica in data["analytics"].get("replicas", []):
        replica["port"] = free_port()
    data.setdefault("redis", {})["port"] = free_port()
    data.setdefault("gateway", {})["port"] = free_port()
    (clone / "examples" / "no-citus.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return home, clone


def test_up_as_root_in_a_private_home_then_down_volumes_leaves_nothing() -> None:
    home, clone = private_clone()
    cluster = yaml.safe_load((clone / "examples" / "no-citus.yaml").read_text())["cluster"]
    state = clone / "examples" / ".streamctl" / cluster
    moved = relocated_path(state)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (home, clone, clone / "examples")}
    args = ("-f", "examples/no-citus.yaml", "--backend", "local")
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        res = streamctl("up", *args, cwd=clone)
        assert res.returncode == 0, res.stderr
        assert res.stderr.count(str(moved)) == 1, res.stderr  # said once
        assert moved.is_relative_to(DATA_ROOT) and (moved / "nodes").is_dir()
        assert (state / "state.json").exists() and (state / "secrets.json").exists()  # state where it was
        assert not (state / "nodes").exists()
        assert streamctl("status", *args, cwd=clone).returncode == 0
        again = streamctl("up", *args, cwd=clone)
        assert again.returncode == 0 and str(moved) not in again.stderr
        assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes  # nothing of the user's changed
        down = streamctl("down", "--volumes", "--yes", *args, cwd=clone)
        assert down.returncode == 0, down.stderr
        assert not moved.exists() and not state.exists()
        assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes
    finally:
        streamctl("down", "--volumes", "--yes", *args, cwd=clone)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(moved, ignore_errors=True)
