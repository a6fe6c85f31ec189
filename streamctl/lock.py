"""One mutating command at a time per cluster: an exclusive flock on `<state dir>/.lock`.

Works the same for every backend (the state directory exists for all of them). The kernel releases an
flock when its holder dies, so a lock left by a killed process is simply taken over. The holder unlinks
the file before it unlocks; a waiter that then wins the old file sees it is no longer the one at the path
and tries again, so two processes never both believe they hold the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from streamctl.errors import LockedError

POLL_SECONDS = 0.05  # how often a bounded wait (--wait-lock) retries; an unbounded wait blocks in flock


class ClusterLock:
    """`with ClusterLock(root, "up").acquire(wait=None, on_wait=...)`: wait None = as long as it takes."""

    def __init__(self, root: Path, command: str, cluster: str = "") -> None:
        self.root = root
        self.path = root / ".lock"
        self.command = command
        self.cluster = cluster or root.name
        self._fd: int | None = None
        self.waited = 0.0

    def holder(self) -> str:
        """Who holds it, as its holder wrote it (`up`, pid 123, since 12:00:01), or "" if unknown."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def acquire(self, wait: float | None, on_wait: Callable[[str], None] | None = None) -> ClusterLock:
        started = time.monotonic()
        told = False
        while True:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:  # the directory went away (a `down --volumes` finishing): again
                continue
            if not self._lock(fd, wait, started, told):  # (it closed fd)
                if wait is not None and time.monotonic() - started >= wait:
                    raise self._busy(wait)
                if not told and on_wait is not None:
                    on_wait(self.holder())
                told = True
                continue  # blocked or polled: try again (a bounded wait polls, the fd is reopened)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != os.fstat(fd).st_ino:  # unlinked while we waited
                os.close(fd)
                continue
            self._fd = fd
            self.waited = time.monotonic() - started if told else 0.0
            os.ftruncate(fd, 0)
            os.write(fd, f"`{self.command}`, pid {os.getpid()}, since {time.strftime('%H:%M:%S')}\n".encode())
            return self

    def _lock(self, fd: int, wait: float | None, started: float, told: bool) -> bool:
        """Take the flock: at once if free; else block (unbounded wait, once told) or poll briefly."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if wait is None and told:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C interrupts it (KeyboardInterrupt)
                return True
            except BaseException:
                os.close(fd)
                raise
        os.close(fd)
        if told and wait:
            time.sleep(min(POLL_SECONDS, max(0.0, wait - (time.monotonic() - started))))
        return False

    def _busy(self, wait: float) -> LockedError:
        holder = self.holder() or "another streamctl command"
        waited = f" after waiting {wait:g}s" if wait else ""
        return LockedError(f"cluster {self.cluster} is busy{waited}: {holder} holds its lock ({self.path})",
                           hint="let it finish and run again, or wait for it with --wait-lock SECONDS "
                                "(without --wait-lock streamctl waits as long as it takes)")

    def release(self) -> None:
        if self._fd is None:
            return
        with suppress(OSError):
            self.path.unlink()  # while still held: see the module docstring
        with suppress(OSError):
            self.root.rmdir()  # only when empty: a cluster never brought up leaves nothing behind
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ClusterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
