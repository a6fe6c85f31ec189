"""Where the Patroni program comes from: a virtual environment of Patroni 4 (with etcd3 and psycopg 3), made
once per machine beside the PostgreSQL templates' cache and shared by every cluster.

It is built from the system's /usr/bin/python3, not the python on PATH: Patroni runs as PostgreSQL's user
when streamctl runs as root, and an interpreter readable by root alone (a private build) would refuse it.
`scripts/install` makes it ahead of time; `up` makes it when it is missing (PyPI must then be reachable)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from streamctl.errors import PreflightError

PATRONI = "patroni[etcd3,psycopg3]==4.1.5"
ENV = "STREAMCTL_PATRONI_VENV"  # overrides where the environment is
SYSTEM_PYTHON = Path("/usr/bin/python3")
_LOCK = threading.Lock()


def venv_dir() -> Path:
    """$STREAMCTL_PATRONI_VENV, else /var/cache/streamctl/patroni-4.1.5 as root, else the user's cache."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    name = "patroni-" + PATRONI.rsplit("==", 1)[1]
    if os.geteuid() == 0:
        return Path("/var/cache/streamctl") / name
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamctl" / name


def patroni_bin(create: bool = True) -> Path:
    """The `patroni` program, its environment made first when `create` and it is missing."""
    venv = venv_dir()
    patroni = venv / "bin" / "patroni"
    if patroni.exists() or not create:
        return patroni
    with _LOCK:
        if patroni.exists():
            return patroni
        python = SYSTEM_PYTHON if SYSTEM_PYTHON.exists() else Path("python3")
        for argv in ([str(python), "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", PATRONI]):
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                raise PreflightError(f"could not make Patroni's environment in {venv}: {' '.join(argv[:3])} failed",
                                     details=(proc.stderr or proc.stdout).strip().splitlines()[-10:],
                                     hint="run ./scripts/install (it makes it), or install python3-venv and "
                                          "check that PyPI is reachable")
        venv.chmod(0o755)
    return patroni


if __name__ == "__main__":  # scripts/install
    print(patroni_bin())
