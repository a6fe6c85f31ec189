"""pgBackRest for one cluster: its configuration file, its stanzas (one per backed-up PostgreSQL node) and
running it, always as the PostgreSQL server's own user and always with `--config` (Debian ships an
/etc/pgbackrest.conf that would otherwise apply)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.atomic import write_file
from streamctl.backends.local.privileges import RunAs, check_traversable
from streamctl.config.model import BACKED_UP_ROLES, BackupSpec, Node
from streamctl.errors import ExitCode, PreflightError, StreamctlError

if TYPE_CHECKING:
    from streamctl.backends.local.backend import LocalBackend
    from streamctl.context import ClusterContext


class BackupError(StreamctlError, exit_code=ExitCode.RUNTIME):
    """A backup, restore point or restore failed; the message names the node."""


@dataclass(frozen=True)
class Stanza:
    name: str  # <cluster>-<node>
    node: Node


def stanza_name(cluster: str, node: str) -> str:
    return f"{cluster}-{node}"


def backed_up_nodes(ctx: ClusterContext) -> list[Node]:
    """Every PostgreSQL group's primary: the coordinator, each worker, the analytics primary."""
    return [n for n in ctx.topology.nodes() if n.role in BACKED_UP_ROLES]


def repository_path(ctx: ClusterContext) -> Path | None:
    """A directory repository as an absolute path (relative paths: from the topology file's directory)."""
    spec = ctx.topology.backup
    if spec is None or spec.repository.path is None:
        return None
    path = Path(spec.repository.path)
    base = ctx.topology_path.parent if ctx.topology_path else Path.cwd()
    return (path if path.is_absolute() else base / path).absolute()


def _local_backend(backend: Any) -> LocalBackend:
    from streamctl.backends.local.backend import LocalBackend

    if not isinstance(backend, LocalBackend):
        raise PreflightError(f"backups are implemented for the local backend only (this cluster runs on "
                             f"{getattr(backend, 'name', backend)})",
                             hint="remove the `backup:` section, or use --backend local")
    return backend


class PgBackRest:
    """One cluster's pgBackRest: `config` is the file every invocation names."""

    def __init__(self, ctx: ClusterContext, backend: Any) -> None:
        if ctx.topology.backup is None or not ctx.topology.backup.enabled:
            raise PreflightError(f"cluster {ctx.topology.cluster} has no backup repository",
                                 hint="add a `backup:` section with a repository to the topology "
                                      "(see README, Backups and restore)")
        if shutil.which("pgbackrest") is None:
            raise PreflightError("pgbackrest is not on PATH but the topology has a `backup:` section",
                                 hint="install it (apt-get install pgbackrest) or remove the section")
        self.ctx = ctx
        self.spec: BackupSpec = ctx.topology.backup
        self.backend = _local_backend(backend)
        self.home = self.backend.home.path / "backup"
        self.config = self.home / "pgbackrest.conf"

    @property
    def run_as(self) -> RunAs:
        return self.backend.run_as

    @property
    def cluster(self) -> str:
        return self.ctx.topology.cluster

    def stanzas(self) -> list[Stanza]:
        """A cluster restored from a repository (`up --from-backup`) archives under a generation of its
        own: its nodes share the system id of the ones it came from, whose stanzas it must not extend."""
        gen = self.ctx.store.read().get("backup_generation")
        prefix = f"{self.cluster}-{gen}" if gen else self.cluster
        return [Stanza(stanza_name(prefix, n.name), n) for n in backed_up_nodes(self.ctx)]

    # -- configuration ------------------------------------------------------------------------------
    def render(self) -> str:
        spec, home = self.spec, self.home
        lines = ["# managed by streamctl: edits are overwritten by the next `up`", "[global]"]
        repo = spec.repository
        if repo.s3 is not None:
            s3 = repo.s3
            lines += ["repo1-type=s3", f"repo1-path={s3.prefix}", f"repo1-s3-endpoint={s3.endpoint}",
                      f"repo1-s3-bucket={s3.bucket}", f"repo1-s3-region={s3.region}",
                      f"repo1-s3-key={s3.key}", f"repo1-s3-key-secret={s3.key_secret}",
                      f"repo1-s3-uri-style={s3.uri_style}",
                      f"repo1-storage-verify-tls={'y' if s3.verify_tls else 'n'}"]
        else:
            lines.append(f"repo1-path={repository_path(self.ctx)}")
        lines.append(f"repo1-retention-full={spec.retention_full}")
        if spec.retention_diff is not None:
            lines.append(f"repo1-retention-diff={spec.retention_diff}")
        lines += [f"compress-type={spec.compression}", f"process-max={spec.parallelism}",
                  f"log-path={home / 'log'}", f"lock-path={home / 'lock'}", f"spool-path={home / 'spool'}",
                  "log-level-console=warn", "log-level-file=info", "start-fast=y",
                  "", "[global:archive-push]", "archive-async=y", "", "[global:archive-get]", "archive-async=n"]
        for st in self.stanzas():
            sock = self.backend.socket_dir(st.node)
            lines += ["", f"[{st.name}]", f"pg1-path={self.backend.data_dir(st.node)}", f"pg1-port={st.node.port}",
                      f"pg1-user={self.ctx.topology.pg_user}", f"pg1-database={st.node.database}"]
            if sock is None:
                raise PreflightError(f"{st.node.name}: the state directory's path is too long for the node's Unix "
                                     "socket, through which pgBackRest connects",
                                     hint="use a shorter --state-dir (or state_dir in the topology)")
            lines.append(f"pg1-socket-path={sock}")
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        """The configuration file (0600: it may hold S3 keys) and the directories it names, all owned by
        the server's user; a directory repository is created and checked reachable."""
        for sub in (self.home, self.home / "log", self.home / "lock", self.home / "spool"):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.run_as.chown(sub)
        repo = repository_path(self.ctx)
        if repo is not None:
            self.check_repository(create=True)
        text = self.render()
        if self.config.exists() and self.config.read_text() == text:
            return
        write_file(self.config, text, 0o600, chown=self.run_as.chown)

    def check_repository(self, create: bool = False) -> None:
        """A directory repository must exist (or be creatable) and be writable by the server's user."""
        repo = repository_path(self.ctx)
        if repo is None:
            return
        if not repo.exists():
            if not create:
                raise PreflightError(f"backup.repository.path: {repo} does not exist",
                                     hint="check the path (relative paths start at the topology file)")
            try:
                repo.mkdir(mode=0o750, parents=True)
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

    def archive_command(self, stanza: str) -> str:
        return f"pgbackrest --config={self.config} --stanza={stanza} archive-push %p"

    # -- running ------------------------------------------------------------------------------------
    def run(self, stanza: str | None, command: str, *args: str, what: str = "",
            timeout: float = 3600) -> str:
        """Run one pgBackRest command as the server's user; its stdout, or a BackupError with its output."""
        argv = ["pgbackrest", f"--config={self.config}", *([f"--stanza={stanza}"] if stanza else []), *args,
                command]
        kwargs = self.run_as.subprocess_kwargs()
        env = dict(kwargs.pop("env", os.environ))
        password = self.ctx.store.known_secrets(self.ctx.topology).get("postgres_password")
        if password:  # commands that connect (backup, check, stanza-create); libpq reads it, never argv
            env["PGPASSWORD"] = password
        env.pop("PGBACKREST_CONFIG", None)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd="/", **kwargs)
        except subprocess.TimeoutExpired:
            raise BackupError(f"{what or command}: pgbackrest {command} did not finish in {timeout:.0f}s") from None
        if proc.returncode != 0:
            out = [x for x in (proc.stderr + proc.stdout).strip().splitlines() if x.strip()][-12:]
            raise BackupError(f"{what or command}: pgbackrest {command} failed (exit {proc.returncode})",
                              details=out, hint=f"pgBackRest's log: {self.home / 'log'}")
        return proc.stdout

    def info(self, stanza: str | None = None) -> list[dict[str, Any]]:
        """`pgbackrest info` as JSON: one entry per stanza in the repository (or the one named)."""
        out = self.run(stanza, "info", "--output=json", what="read the backup repository", timeout=120)
        data = json.loads(out or "[]")
        return data if isinstance(data, list) else []
