"""PostgreSQL refuses to run as root: when we are root, run it as an unprivileged user we arrange."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamctl.errors import PreflightError

DEFAULT_USERS = ("postgres", "streamctl")


@dataclass(frozen=True)
class RunAs:
    """Who runs the server processes: None for "ourselves" (not root)."""

    user: str | None
    uid: int
    gid: int

    @property
    def dropping(self) -> bool:
        return self.user is not None

    def chown(self, path: Path) -> None:
        if self.dropping:
            os.chown(path, self.uid, self.gid)

    def chown_tree(self, path: Path) -> None:
        if not self.dropping:
            return
        for root, dirs, files in os.walk(path):
            os.chown(root, self.uid, self.gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)

    def subprocess_kwargs(self) -> dict[str, Any]:
        if not self.dropping:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [],
                "env": {**os.environ, "HOME": pwd.getpwuid(self.uid).pw_dir, "USER": self.user or ""}}


def resolve_run_as(configured: str | None, create: bool = True) -> RunAs:
    """Not root: ourselves. Root: the configured user, else `postgres`, else a `streamctl` system user
    (created on first use; with create=False, as for a dry run, a placeholder with no uid stands in)."""
    if os.geteuid() != 0:
        return RunAs(None, os.getuid(), os.getgid())
    candidates = (configured,) if configured else DEFAULT_USERS
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)  # type: ignore[arg-type]
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise PreflightError(f"local.run_as: user {name!r} is root; PostgreSQL will not run as root",
                                 hint="name an unprivileged user, or leave local.run_as unset")
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    if configured:
        raise PreflightError(f"local.run_as: user {configured!r} does not exist",
                             hint=f"create it (useradd --system {configured}) or leave local.run_as unset")
    if not create:
        return RunAs("streamctl", -1, -1)
    return _create_system_user("streamctl")


def _create_system_user(name: str) -> RunAs:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 9):  # 9: already exists (a concurrent run made it)
        raise PreflightError(f"running as root, and could not create the unprivileged user {name!r}: "
                             f"{proc.stderr.strip()}",
                             hint="create an unprivileged user and set local.run_as, or run as that user")
    entry = pwd.getpwnam(name)
    return RunAs(name, entry.pw_uid, entry.pw_gid)


def unreachable_parent(run_as: RunAs, path: Path) -> Path | None:
    """The first directory on the way to `path` the server user cannot search, or None."""
    if not run_as.dropping:
        return None
    probe = path
    while not probe.exists():
        probe = probe.parent
    for parent in [probe, *probe.parents]:
        st = parent.stat()
        mode = st.st_mode
        ok = (mode & stat.S_IXOTH) or (st.st_uid == run_as.uid and mode & stat.S_IXUSR) or (
            st.st_gid == run_as.gid and mode & stat.S_IXGRP)
        if not ok:
            return parent
    return None


def check_traversable(run_as: RunAs, path: Path) -> None:
    """The server user must be able to reach its data directory through every parent directory."""
    parent = unreachable_parent(run_as, path)
    if parent is not None:
        raise PreflightError(
            f"the data directory {path} is not reachable by the user {run_as.user!r} that runs "
            f"PostgreSQL (no search permission on {parent})",
            hint="use --state-dir (or state_dir in the topology) under a directory that user can "
                 "reach, or run streamctl as an ordinary user")
