"""pgBackRest on the local backend: it runs as the server's user on this machine (a subprocess), its
configuration, log, lock and spool under the cluster's data home; a restored node is a data directory
started with pg_ctl, its settings in the node's streamctl.conf."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from streamctl.atomic import write_file
from streamctl.backends.local.privileges import RunAs, check_traversable
from streamctl.engines.pgbackrest import local_config
from streamctl.errors import PreflightError

if TYPE_CHECKING:
    from streamctl.backends.local.backend import LocalBackend
    from streamctl.config.members import Group, Member
    from streamctl.config.model import Node

_PORT = re.compile(r"^\s*port\s*=\s*'?(\d+)'?", re.M)


class LocalPlace:
    """Where pgBackRest runs for a cluster of the local backend: here, as the server's user."""

    restores = True
    redis_snapshots = True

    def __init__(self, backend: LocalBackend) -> None:
        if shutil.which("pgbackrest") is None:
            raise PreflightError("pgbackrest is not on PATH but the topology has a `backup:` section",
                                 hint="install it (apt-get install pgbackrest) or remove the section")
        self.backend = backend
        self.config = local_config(backend.home.path)
        self.home = self.config.parent
        self.log_hint = f"pgBackRest's log: {self.home / 'log'}"

    @property
    def run_as(self) -> RunAs:
        return self.backend.run_as

    def pg_lines(self, node: Node) -> tuple[str, int, str]:
        """pg1-path, pg1-port and pg1-socket-path of a backed-up node."""
        sock = self.backend.socket_dir(node)
        if sock is None:
            raise PreflightError(f"{node.name}: the state directory's path is too long for the node's Unix "
                                 "socket, through which pgBackRest connects",
                                 hint="use a shorter --state-dir (or state_dir in the topology)")
        return str(self.backend.data_dir(node)), node.port, str(sock)

    def member_lines(self, node: Node, member: Member) -> tuple[str, int, str]:
        """pgN-path, pgN-port and pgN-socket-path of one member of a group under HA."""
        paths = self.backend.member_paths(node, member)
        if len(str(paths.socket_dir)) >= 90:  # Patroni's member then listens on TCP only (streamctl.ha.patroni)
            raise PreflightError(f"{member.name}: the state directory's path is too long for the member's Unix "
                                 "socket, through which pgBackRest connects",
                                 hint="use a shorter --state-dir (or state_dir in the topology)")
        return str(paths.data_dir), member.port, str(paths.socket_dir)

    def repo_path(self, repo: Path) -> str:
        return str(repo)

    def standby_hosts(self, group: Group, streaming: list[str]) -> tuple[list[str], str | None]:
        """Under HA every member's data is on this machine: the stanza lists them all already."""
        return [], None

    # -- the configuration file -----------------------------------------------------------------------
    def write_config(self, text: str, repo: Path | None, node: Node | None = None) -> None:
        """The file (0600: it may hold S3 keys) and the directories it names, all owned by the server's user;
        a directory repository is created and checked reachable."""
        for sub in (self.home, self.home / "log", self.home / "lock", self.home / "spool"):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.run_as.chown(sub)
        if repo is not None:
            self.check_repository(repo, create=True)
        if self.read_config() == text:
            return
        write_file(self.config, text, 0o600, chown=self.run_as.chown)

    def read_config(self, node: Node | None = None) -> str | None:
        return self.config.read_text() if self.config.exists() else None

    def check_repository(self, repo: Path, create: bool = False) -> None:
        """A directory repository must exist (or be creatable) and be writable by the server's user."""
        if not repo.exists():
            if not create:
                raise PreflightError(f"backup.repository.path: {repo} does not exist",
                                     hint="check the path (relative paths start at the topology file)")
            try:  # exist_ok: each node's archiving step may write the configuration at once
                repo.mkdir(mode=0o750, parents=True, exist_ok=True)
            except OSError as exc:
                raise PreflightError(f"backup.repository.path: cannot create {repo}: {exc.strerror}") from None
            self.run_as.chown(repo)
        if not repo.is_dir():
            raise PreflightError(f"backup.repository.path: {repo} is not a directory")
        check_traversable(self.run_as, repo)
        uid = self.run_as.uid if self.run_as.dropping else os.getuid()
        st = repo.stat()
        if st.st_uid != uid and not (st.st_mode & 0o002):
            who = self.run_as.user or "this user"
            raise PreflightError(f"backup.repository.path: {repo} is not writable by {who!r}, which runs "
                                 f"PostgreSQL and pgBackRest (owner uid {st.st_uid})",
                                 hint=f"chown -R {who} {repo}")

    # -- running --------------------------------------------------------------------------------------
    def run(self, node: Node | None, argv: list[str], password: str | None,
            timeout: float) -> tuple[int, str, str]:
        """`argv` as the server's user; the password in libpq's environment, never the command line."""
        kwargs = self.run_as.subprocess_kwargs()
        env = dict(kwargs.pop("env", os.environ))
        if password:
            env["PGPASSWORD"] = password
        env.pop("PGBACKREST_CONFIG", None)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd="/", **kwargs)
        return proc.returncode, proc.stdout, proc.stderr

    def archive_options(self) -> list[str]:
        return []

    def restore_site(self, node: Node) -> LocalSite:
        return LocalSite(node, self.backend)

    def read_file(self, node: Node, path: str) -> bytes:
        return Path(path).read_bytes()

    def put_redis_files(self, node: Node, files: dict[str, bytes]) -> None:
        data = self.backend.data_dir(node)
        for name, content in files.items():
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_bytes(content)

    def own(self, path: Path) -> None:
        self.run_as.chown(path)


class LocalSite:
    """One restored node of the local backend while it is isolated: its own data directory and socket."""

    def __init__(self, node: Node, backend: LocalBackend) -> None:
        self.node, self.backend = node, backend
        self.data = backend.data_dir(node)
        self.log = self.data.parent / "log" / "postgres.log"
        self.port = node.port
        sock = backend.socket_dir(node)
        self.socket = sock if sock is not None else Path()
        self.server_socket = str(self.socket)
        self.root = self.data.parent

    def prepare(self) -> None:
        from streamctl.backup.pgbackrest import BackupError

        if self.backend.socket_dir(self.node) is None:
            raise BackupError(f"{self.node.name}: its socket directory path is too long for a Unix socket, "
                              "which a restore needs", hint="use a shorter state directory")
        for sub in (self.root, self.root / "log", self.root / "run"):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.backend.run_as.chown(sub)
        if self.data.exists() and any(self.data.iterdir()):
            raise BackupError(f"{self.node.name}: {self.data} is not empty; a restore never writes over data")

    def put_file(self, name: str, text: str) -> None:
        """A file beside the socket (the isolated start's pg_hba), owned by the server's user."""
        path = self.socket / name
        path.write_text(text)
        self.backend.run_as.chown(path)

    def remove_file(self, name: str) -> None:
        (self.socket / name).unlink(missing_ok=True)

    def source_port(self) -> int:
        """The port the node had where it was backed up (local nodes share a host: Citus names them by port)."""
        conf = self.data / "streamctl.conf"
        found = _PORT.search(conf.read_text()) if conf.exists() else None
        return int(found.group(1)) if found else 0

    def plain_conf(self) -> None:
        """A member's copy made a plain node's (under HA `up` converts it back: its group's leader)."""
        from streamctl.backup import ha

        ha.plain_conf(self.data, self.backend.run_as.chown)

    def start(self, settings: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
        """The node's managed settings with `settings` after them (they win), then pg_ctl start."""
        self._settings("\n# restore in progress (isolated)\n" + "".join(f"{k} = '{v}'\n" for k, v in settings))
        self.log.unlink(missing_ok=True)
        return self.pg_ctl("-l", str(self.log), "-W", "start")

    def finalize(self) -> None:
        """The node's managed settings as `up` writes them (it starts the node, Citus loaded)."""
        self._settings("")

    def _settings(self, extra: str) -> None:
        conf = self.data / "streamctl.conf"
        conf.write_text(self.backend.config_text(self.node) + extra)
        self.backend.run_as.chown(conf)

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.backend.pg_bindir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                              start_new_session=True, **self.backend.run_as.subprocess_kwargs())

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log_lines(self, n: int = 15) -> list[str]:
        return self.backend.logs(self.node, n)

    def discard_data(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)

    def close(self) -> None:
        os.sync()
