"""Copy one local Docker volume's files into another straight on the host, when this process can.

Cloning the PostgreSQL template through a helper container costs a container start per node; when the
engine runs on this host and this process may read and write its volume directories (root, as the
engine itself), the same `cp -a` runs here without that start (an in-place restore's copies of the
volumes it keeps aside too: backup/docker_aside.py). Anything else falls back to the helper
container, so this is only ever a faster path, never a requirement.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any


def local_mountpoint(api: Any, volume: str) -> Path | None:
    """The volume's directory on this host, when the engine is local and this process can reach it."""
    if not str(getattr(api, "base_url", "")).startswith("http+docker://local"):  # a Unix socket (or pipe)
        return None
    info = api.inspect_volume(volume)
    if info.get("Driver") != "local" or not info.get("Mountpoint"):
        return None
    path = Path(info["Mountpoint"])
    try:
        return path if path.is_dir() and os.access(path, os.R_OK | os.W_OK | os.X_OK) else None
    except OSError:
        return None


def copy_tree(src: Path, dst: Path, skip: str | None = None) -> None:
    """Copy src's contents into the existing, empty dst with owners, modes and times (`cp -a`), then drop
    dst/skip if given. Raises OSError when that fails (the caller takes the helper container instead)."""
    cp = shutil.which("cp")
    if cp is None:
        raise FileNotFoundError("cp")
    # A list of arguments, no shell; nothing secret on it (two directory names).
    done = subprocess.run([cp, "-a", f"{src}/.", f"{dst}/"], capture_output=True, check=False)
    if done.returncode != 0:
        raise OSError(done.stderr.decode(errors="replace").strip() or f"cp exited {done.returncode}")
    if skip is not None:
        (dst / skip).unlink(missing_ok=True)


def empty(path: Path) -> None:
    """Remove everything inside path (a half-done copy), keeping path itself."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
