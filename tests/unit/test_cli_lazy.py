"""The CLI imports only what the command it runs uses (the whole point of the lazy registry)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("docker", "psycopg", "pydantic", "fastapi", "uvicorn", "pymongo", "redis", "streamctl.backends.docker.backend")


def imported_by(*argv: str) -> set[str]:
    code = ("import sys; sys.argv = ['streamctl', *sys.argv[1:]]\n"
            "from streamctl.cli.main import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    return set(proc.stderr.split())


@pytest.mark.parametrize("argv", [("--version",)])
def test_version_loads_no_heavy_library(argv: tuple[str, ...]) -> None:
    loaded = imported_by(*argv)
    assert "typer" in loaded  # the probe really ran
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY}


def test_validate_loads_the_models_but_no_engine_client(tmp_path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("version: 1\n")
    loaded = imported_by("validate", "-f", str(path))
    assert "streamctl.config.model" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("docker", "psycopg", "fastapi", "pymongo")}
