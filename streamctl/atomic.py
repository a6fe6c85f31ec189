"""Writing a file whole or not at all: a reader sees the old content or the new, never a part of it, and the
file has its mode from its first byte (a secret is never readable by others, not even for a moment)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_file(path: Path, data: str | bytes, mode: int = 0o644, dir_mode: int = 0o777,
               chown: Callable[[Path], None] | None = None) -> None:
    """`data` into `path` through a temporary file beside it, renamed into place. The directory is made
    (with `dir_mode`) when missing; `chown` gives the temporary file its owner before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        if chown is not None:
            chown(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
