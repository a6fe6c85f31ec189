"""How to initialise, configure, start and recognise each engine as a local process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamctl.atomic import write_file
from streamctl.backends.local import pg_template
from streamctl.backends.local.privileges import RunAs
from streamctl.config.model import Engine, Node, Topology
from streamctl.engines import mongo as mongo_engine
from streamctl.engines import postgres as pg_engine
from streamctl.engines import redis as redis_engine
from streamctl.errors import PreflightError

Runner = Callable[[list[str]], None]


def find_pg_bindir(configured: str | None) -> Path:
    """Configured path, else where `initdb` on PATH really lives, else `pg_config --bindir`, else the
    newest /usr/lib/postgresql/NN/bin (Debian's layout)."""
    if configured:
        return Path(configured)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    # Debian and Ubuntu keep server binaries off PATH, one directory per major version: take the newest.
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: _major(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    raise PreflightError("PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH",
                         hint="install PostgreSQL (apt-get install postgresql), put its bin directory on "
                              "PATH, or set local.pg_bindir")


def _major(version: str) -> int:
    return int(version) if version.isdigit() else 0


def pg_sharedir(bindir: Path) -> Path:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0:
            return Path(out.stdout.strip())
    # Debian layout: /usr/lib/postgresql/NN/bin -> /usr/share/postgresql/NN
    version = bindir.parent.name
    debian = Path("/usr/share/postgresql") / version
    return debian if debian.exists() else bindir.parent / "share"


def pid_alive(pid: int, expect: str) -> bool:
    """True when pid runs and its command line mentions `expect` (guards against pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return expect in cmdline


def read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


class Recipe:
    """One engine's local process: subclasses fill in the specifics."""

    stop_signal = signal.SIGTERM
    expect = ""

    def __init__(self, node: Node, node_dir: Path, topology: Topology, secrets: dict[str, str],
                 bindir: Path | None, tls_fingerprint: str | None = None) -> None:
        self.node, self.dir, self.topology, self.secrets, self.bindir = node, node_dir, topology, secrets, bindir
        self.tls_fingerprint = tls_fingerprint  # None: TLS off; else the certificates' fingerprint

    @property
    def tls_dir(self) -> Path | None:
        """Where the server's CA, certificate and key live (None when TLS is off)."""
        return self.dir / "tls" if self.tls_fingerprint is not None else None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / f"{self.node.engine.value}.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / f"{self.node.engine.value}.pid"

    @property
    def definition(self) -> dict[str, Any]:
        return {"engine": self.node.engine.value, "config": self.config_text(), "tls": self.tls_fingerprint}

    def made_as(self, recorded: str | None) -> str | None:
        """The definition the node's recorded fingerprint stands for (a group under HA maps an older form)."""
        return recorded

    def config_text(self) -> str:
        raise NotImplementedError

    def initialized(self) -> bool:
        raise NotImplementedError

    def initialize(self, run: Runner, run_as: RunAs) -> None:
        for sub in (self.data_dir, self.log_file.parent, self.pid_file.parent, self.dir / "run"):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
            run_as.chown(sub)

    def write_config(self, run_as: RunAs) -> None:
        raise NotImplementedError

    def start_argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, run: Runner, run_as: RunAs) -> None:
        run(self.start_argv())

    def running_pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid and pid_alive(pid, self.expect) else None

    def detail(self) -> str:
        """What `status` says of the process."""
        pid = self.running_pid()
        return f"pid {pid}" if pid else ""

    def pids(self) -> list[int]:
        """The processes `stop` signals (a group under HA has one per member)."""
        pid = self.running_pid()
        return [pid] if pid else []

    def dirs(self) -> list[Path]:
        """The directories `remove` deletes."""
        return [self.dir]

    def clear_stale(self) -> None:
        """Remove a pid file left behind by a killed process."""
        if self.pid_file.exists() and not self.running_pid():
            self.pid_file.unlink(missing_ok=True)


class PostgresRecipe(Recipe):
    expect = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def definition(self) -> dict[str, Any]:
        return {"engine": "postgres", "bindir": str(self.bindir), "config": self.config_text(),
                "tls": self.tls_fingerprint}

    def config_text(self) -> str:
        n = self.node
        socket_dir = self.dir / "run"
        # Unix socket paths are limited to ~107 bytes; fall back to TCP only for deep state dirs.
        sockets = str(socket_dir) if len(str(socket_dir)) < 90 else ""
        tls = pg_engine.tls_settings(str(self.tls_dir), self.topology.runs_citus(n.role)) if self.tls_dir else []
        lines = [
            "# managed by streamctl: edits are overwritten by the next `up`",
            f"port = {n.port}",
            pg_engine.conf_line("listen_addresses", n.bind),
            pg_engine.conf_line("unix_socket_directories", sockets),
            *(pg_engine.conf_line(k, v) for k, v in [*n.settings, *tls]),
        ]
        return "\n".join(lines) + "\n"

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self, run: Runner, run_as: RunAs) -> None:
        """A copy of the machine-wide template (pg_template: one initdb per binary), then this cluster's
        password. (Copies share a system identifier, which logical replication, postgres_fdw and Citus
        do not use.)"""
        super().initialize(run, run_as)
        assert self.bindir is not None

        def include_ours(staging: Path) -> None:
            with (staging / "postgresql.conf").open("a") as fh:
                fh.write("\ninclude_if_exists = 'streamctl.conf'\n")

        pg_template.copy_into(self.data_dir, self.bindir, self.topology.pg_user, self.secrets["postgres_password"],
                              self.node.database, run, run_as, before_place=include_ours)

    def write_config(self, run_as: RunAs) -> None:
        target = self.data_dir / "streamctl.conf"
        target.write_text(self.config_text())
        run_as.chown(target)

    def start_argv(self) -> list[str]:
        assert self.bindir is not None
        return [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-W",
                "start"]

    def clear_stale(self) -> None:
        # PostgreSQL replaces stale lock files itself, except when the old pid is a zombie (some
        # sandboxes' init never reaps): our liveness check rules zombies out, so such files can go.
        super().clear_stale()
        for lock in (self.dir / "run").glob(".s.PGSQL.*.lock"):
            pid = read_pid(lock)
            if pid is None or not pid_alive(pid, self.expect):
                lock.unlink(missing_ok=True)
                Path(str(lock)[: -len(".lock")]).unlink(missing_ok=True)


class ConfFileRecipe(Recipe):
    """An engine started with one configuration file of its own in the node's directory."""

    conf_name = ""
    conf_mode = 0o644

    @property
    def conf_file(self) -> Path:
        return self.dir / self.conf_name

    def initialized(self) -> bool:
        return self.conf_file.exists() and self.data_dir.exists()

    def write_config(self, run_as: RunAs) -> None:
        write_file(self.conf_file, self.config_text(), self.conf_mode)


class RedisRecipe(ConfFileRecipe):
    expect = "redis-server"
    conf_name = "redis.conf"
    conf_mode = 0o600  # it holds the password

    @property
    def definition(self) -> dict[str, Any]:
        """Without the password: a rotated one is set live (CONFIG SET) and written here, no restart."""
        return {"engine": "redis", "config": self.config_text("<redis_password>"), "tls": self.tls_fingerprint}

    def config_text(self, password: str | None = None) -> str:
        n = self.node
        word = redis_engine.config_word
        process = [f"bind {word(n.bind)}", "protected-mode yes", "appendfsync everysec",
                   'save "3600 1 300 100 60 10000"', f"dir {word(str(self.data_dir))}", "daemonize yes",
                   f"pidfile {word(str(self.pid_file))}", f"logfile {word(str(self.log_file))}"]
        return redis_engine.conf(self.secrets["redis_password"] if password is None else password, n.port,
                                 str(self.tls_dir) if self.tls_dir else None, process)

    def start_argv(self) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", str(self.conf_file)]


class MongoRecipe(ConfFileRecipe):
    expect = "mongod"
    conf_name = "mongod.conf"

    def config_text(self) -> str:
        n = self.node
        return "\n".join([
            "# managed by streamctl",
            "net:",
            f"  port: {n.port}",
            f"  bindIp: {n.bind}",
            *(mongo_engine.tls_yaml(str(self.tls_dir)) if self.tls_dir else []),
            "storage:",
            f"  dbPath: {self.data_dir}",
            "systemLog:",
            "  destination: file",
            f"  path: {self.log_file}",
            "  logAppend: true",
            "processManagement:",
            "  fork: true",
            f"  pidFilePath: {self.pid_file}",
            "security:",
            "  authorization: enabled",
        ]) + "\n"

    def start_argv(self) -> list[str]:
        return [shutil.which("mongod") or "mongod", "--config", str(self.conf_file)]


def recipe_for(node: Node, node_dir: Path, topology: Topology, secrets: dict[str, str],
               bindir: Path | None, tls_fingerprint: str | None = None) -> Recipe:
    cls = {Engine.POSTGRES: PostgresRecipe, Engine.REDIS: RedisRecipe, Engine.MONGO: MongoRecipe}[node.engine]
    return cls(node, node_dir, topology, secrets, bindir, tls_fingerprint)
