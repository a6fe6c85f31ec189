"""The explicit package list in pyproject.toml names every package under streamctl/ (a wheel would miss it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_python_package_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "streamctl").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_assets_are_found() -> None:
    from streamctl.assets import asset_dir

    assert asset_dir("sql").joinpath("metadata").is_dir()
    assert asset_dir("seeds").joinpath("genres.txt").is_file()
