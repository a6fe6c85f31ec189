"""A machine-wide cache of initialised PostgreSQL data directories, so initdb runs once per binary.

initdb is the expensive, CPU-bound part of creating a node and is the same work for every node of every
cluster built from the same binaries by the same superuser name. The template is initialised with a
throwaway password that is never stored; each node's copy gets the cluster's real password through a
single-user backend fed on stdin (never a command line), so no secret is shared between clusters.
The template also holds one empty spare database that each copy renames to its node's database (a
catalogue update) instead of creating it later, which copies template1 and writes it all to the WAL.
The key covers the binary (path, size, mtime, `postgres --version`), the superuser and the owner.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamctl.backends import disk
from streamctl.backends.local.privileges import RunAs
from streamctl.engines.postgres import sql_ident, sql_literal
from streamctl.errors import BackendError
from streamctl.names import SPARE_DATABASE

CACHE_ENV = "STREAMCTL_PG_TEMPLATE_CACHE"  # overrides where templates live (benchmarks use a private one)
FORMAT = "2"  # bump when what a template holds changes: old templates are then never reused
INITDB_OPTIONS = ("--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
                  "--no-sync")
_LOCK = threading.Lock()  # nodes of one `up` start in parallel threads; a file lock covers other processes


def cache_root() -> Path:
    """$STREAMCTL_PG_TEMPLATE_CACHE, else /var/cache/streamctl/pg-templates as root, else the user's cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.geteuid() == 0:
        return Path("/var/cache/streamctl/pg-templates")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamctl" / "pg-templates"


def template_key(bindir: Path, superuser: str, run_as: RunAs) -> str:
    postgres = Path(os.path.realpath(bindir / "postgres"))
    st = postgres.stat()
    version = subprocess.run([str(postgres), "--version"], capture_output=True, text=True).stdout.strip()
    parts = [FORMAT, str(postgres), str(st.st_size), str(st.st_mtime_ns), version, superuser, str(run_as.uid),
             *INITDB_OPTIONS]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def ensure_template(bindir: Path, superuser: str, run: Callable[[list[str]], None], run_as: RunAs) -> Path:
    """The initialised template for these binaries and superuser, made now unless cached."""
    root = cache_root()
    key = template_key(bindir, superuser, run_as)
    target = root / f"pg-{key}"
    if (target / "PG_VERSION").exists():
        return target
    with _LOCK:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        run_as.chown(root)
        with open(root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (target / "PG_VERSION").exists():  # another process made it meanwhile
                return target
            building = root / f".building-{key}-{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            pwfile = root / f".pwfile-{key}-{os.getpid()}"
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")  # throwaway: never stored, never reused
            run_as.chown(pwfile)
            try:
                run([str(bindir / "initdb"), "-D", str(building), "-U", superuser, f"--pwfile={pwfile}",
                     *INITDB_OPTIONS])
            finally:
                pwfile.unlink(missing_ok=True)
            _single_user(bindir, building, Statements((f"CREATE DATABASE {SPARE_DATABASE}",)), run_as)
            disk.flush(building)  # initdb ran with --no-sync: durable before it counts as made
            os.replace(building, target)
    return target


@dataclass(frozen=True)
class Statements:
    """Statements for a copy's single-user backend (one per line), the secrets they hold (kept out of an
    error's output), and the settings they run under (CREATE EXTENSION citus needs Citus preloaded)."""

    lines: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()


def personalise(bindir: Path, data_dir: Path, superuser: str, password: str, database: str | None,
                run_as: RunAs, more: Statements = Statements(), in_database: Statements = Statements()) -> None:
    """Make a fresh copy of the template this node's: the cluster's password, and the spare database
    renamed to the node's (or dropped when it has none); one single-user backend, statements on stdin.
    `more`: further statements there (connected to `postgres`); `in_database`: statements run in the node's
    database, by a second backend."""
    if database and database not in ("postgres", "template0", "template1"):
        spare = f"ALTER DATABASE {SPARE_DATABASE} RENAME TO {sql_ident(database)}"
    else:
        spare = f"DROP DATABASE {SPARE_DATABASE}"
    password_set = f"ALTER ROLE {sql_ident(superuser)} PASSWORD {sql_literal(password)}"
    _single_user(bindir, data_dir, Statements((password_set, spare, *more.lines),
                                              (password, *more.hidden), more.settings), run_as,
                 database="postgres")  # where GRANTs on functions belong
    if in_database.lines:
        _single_user(bindir, data_dir, in_database, run_as, database=database or "postgres")


def copy_into(data_dir: Path, bindir: Path, superuser: str, password: str, database: str | None,
              run: Callable[[list[str]], None], run_as: RunAs, more: Statements = Statements(),
              in_database: Statements = Statements(),
              before_place: Callable[[Path], None] = lambda staging: None) -> None:
    """`data_dir` (an empty directory) replaced by a copy of the template made this node's (`personalise`).
    Built beside it and renamed into place when whole (`before_place(copy)` runs just before), so a copy
    interrupted before its password is set is never taken for an initialised node (PG_VERSION is looked for)."""
    template = ensure_template(bindir, superuser, run, run_as)
    staging = data_dir.with_name(data_dir.name + ".init")
    shutil.rmtree(staging, ignore_errors=True)
    run(["cp", "-a", str(template), str(staging)])
    personalise(bindir, staging, superuser, password, database, run_as, more, in_database)
    before_place(staging)
    data_dir.rmdir()
    os.replace(staging, data_dir)


def _single_user(bindir: Path, data_dir: Path, statements: Statements, run_as: RunAs,
                 database: str = "template1") -> None:
    """Run statements in a single-user backend (no server, no port) connected to `database`, fed on stdin."""
    settings = [arg for k, v in statements.settings for arg in ("-c", f"{k}={v}")]
    proc = subprocess.run([str(bindir / "postgres"), "--single", "-D", str(data_dir), "-c", "log_statement=none",
                           *settings, database], input="\n".join(statements.lines) + "\n", capture_output=True,
                          text=True, timeout=120, start_new_session=True, **run_as.subprocess_kwargs())
    hidden = statements.hidden
    if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
        # the output may quote a statement: show only lines that cannot hold a secret
        out = [ln for ln in (proc.stderr + proc.stdout).splitlines() if not any(s and s in ln for s in hidden)][-10:]
        raise BackendError(f"preparing the PostgreSQL data directory {data_dir} failed (exit {proc.returncode})",
                           details=out)
