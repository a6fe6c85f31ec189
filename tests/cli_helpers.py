"""Running the `streamctl` command as a whole process, as users and CI do (output not a terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

STREAMCTL = str(Path(sys.executable).with_name("streamctl"))


def streamctl(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STREAMCTL, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})


def start(*args: str, cwd: Path | None = None, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """Started in the background; sigint_ignored: as a non-interactive shell starts a background job (`&`),
    with SIGINT ignored, which the process inherits."""
    return subprocess.Popen([STREAMCTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env={**os.environ, "NO_COLOR": "1"},
                            preexec_fn=_ignore_sigint if sigint_ignored else None)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
