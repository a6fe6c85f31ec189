"""Making files written without fsync durable in one go: initialising a template with initdb's --no-sync
and then flushing its filesystem once is much cheaper than initdb's fsync of every file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def flush(path: Path) -> None:
    """Write everything cached for the filesystem holding path to disk (syncfs, through `sync -f`)."""
    done = subprocess.run(["sync", "-f", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        os.sync()  # a `sync` without -f: every filesystem
