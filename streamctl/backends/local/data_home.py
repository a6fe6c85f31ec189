"""Where the local backend keeps node data: under the state directory, unless we run as root and the
unprivileged PostgreSQL user cannot reach it (a clone in /root): then under /var/lib/streamctl.

The state itself (state.json, secrets) stays where the topology says; no permission of the user's own
directories is ever changed. The relocated directory is keyed by the state directory's path, so two
clusters, or one cluster name under two state directories, never share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from streamctl.backends.local.privileges import RunAs, unreachable_parent

DATA_ROOT = Path("/var/lib/streamctl")  # documented in the README


@dataclass(frozen=True)
class DataHome:
    """`path` holds nodes/<node>/ and templates/; `relocated` says it is not the state directory."""

    path: Path
    relocated: bool
    reason: str = ""

    @property
    def nodes(self) -> Path:
        return self.path / "nodes"


def relocated_path(state_root: Path) -> Path:
    key = hashlib.sha256(str(state_root.absolute()).encode()).hexdigest()[:10]
    return DATA_ROOT / f"{state_root.name}-{key}"


def data_home(state_root: Path, run_as: RunAs) -> DataHome:
    """Data already relocated stays there; else the state directory if the server user reaches it."""
    moved = relocated_path(state_root)
    blocked = unreachable_parent(run_as, state_root)
    reason = (f"the user {run_as.user!r} that runs PostgreSQL cannot reach {state_root} (no search "
              f"permission on {blocked})") if blocked else ""
    if moved.exists():
        return DataHome(moved, True, reason or f"node data was placed in {moved} earlier")
    if blocked is None or (state_root / "nodes").exists():
        return DataHome(state_root, False)
    return DataHome(moved, True, reason)
