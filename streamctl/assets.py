"""Where the shipped SQL files and seed word lists are: inside the installed package, or at a checkout's root.

A wheel carries `sql/` and `seeds/` as `streamctl/sql` and `streamctl/seeds`; a source checkout (and an
editable install of it) keeps them at the repository root, as the layout in the design notes has it.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from streamctl.errors import StreamctlError


def asset_dir(name: str) -> Traversable:
    """The folder `name` (`sql` or `seeds`): the installed package's copy first, then the checkout's root."""
    packaged = resources.files("streamctl").joinpath(name)
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise StreamctlError(
        f"streamctl's {name}/ folder is missing from this installation",
        hint="reinstall streamctl (pip install .) from a complete copy of the repository",
    )
