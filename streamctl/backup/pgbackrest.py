"""pgBackRest for one cluster: its configuration file, its stanzas (one per backed-up PostgreSQL node) and
running it, always as the PostgreSQL server's own user, where the server runs, and always with `--config`
(Debian ships an /etc/pgbackrest.conf that would otherwise apply)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from streamctl.backup import ha
from streamctl.config.model import BACKED_UP_ROLES, BackupSpec, Node
from streamctl.engines.pgbackrest import archive_push, stanza_name, stanza_prefix
from streamctl.errors import ExitCode, PreflightError, RefusedError, StreamctlError

if TYPE_CHECKING:
    from streamctl.backup.recover import Site
    from streamctl.config.members import Group
    from streamctl.context import ClusterContext


class Place(Protocol):
    """Where and how pgBackRest runs for one backend: the paths its configuration names, that file, the
    repository's check, running a command as the server's user where `node` runs, a restored node's site."""

    home: Any  # pgBackRest's configuration, log, lock and spool, as pgBackRest sees them
    config: Any
    log_hint: str
    restores: bool  # whether sets can be restored on this backend
    redis_snapshots: bool  # whether `backup` copies Redis's snapshot into the set

    def pg_lines(self, node: Node) -> tuple[str, int, str]: ...
    def repo_path(self, repo: Path) -> str: ...
    def write_config(self, text: str, repo: Path | None, node: Node | None = None) -> None: ...
    def read_config(self, node: Node | None = None) -> str | None: ...
    def check_repository(self, repo: Path, create: bool = False) -> None: ...
    def run(self, node: Node | None, argv: list[str], password: str | None,
            timeout: float) -> tuple[int, str, str]: ...
    def archive_options(self) -> list[str]: ...  # archive-push's own, beside the configuration file
    # under HA: the options with which a backup reaches the streaming standbys' data, or why it cannot
    def standby_hosts(self, group: Group, streaming: list[str]) -> tuple[list[str], str | None]: ...
    def restore_site(self, node: Node) -> Site: ...
    def read_file(self, node: Node, path: str) -> bytes: ...  # one of a node's files (Redis's snapshot)
    def put_redis_files(self, node: Node, files: dict[str, bytes]) -> None: ...  # into a new Redis's data
    def own(self, path: Path) -> None: ...  # a file streamctl put into the repository


LOCK_HELD = 50  # pgBackRest's exit code when another of its processes holds the lock


class BackupError(StreamctlError, exit_code=ExitCode.RUNTIME):
    """A backup, restore point or restore failed; the message names the node."""


@dataclass(frozen=True)
class Stanza:
    name: str  # <cluster>-<node>
    node: Node


def backed_up_nodes(ctx: ClusterContext) -> list[Node]:
    """Every PostgreSQL group's primary: the coordinator, each worker, the analytics primary."""
    return [n for n in ctx.topology.nodes() if n.role in BACKED_UP_ROLES]


def repository_path(ctx: ClusterContext) -> Path | None:
    """A directory repository as an absolute path (relative paths: from the topology file's directory)."""
    spec = ctx.topology.backup
    if spec is None:
        return None
    return spec.repository_dir(ctx.topology_path.parent if ctx.topology_path else Path.cwd())


def _place(tool: PgBackRest, backend: Any) -> Place:
    """Where pgBackRest runs for this backend (the server's machine or container; on Swarm the repository's)."""
    from streamctl.backends.docker.backend import DockerBackend
    from streamctl.backends.local.backend import LocalBackend
    from streamctl.backends.swarm.backend import SwarmBackend

    if isinstance(backend, LocalBackend):
        from streamctl.backup.local import LocalPlace

        return LocalPlace(backend)
    if isinstance(backend, DockerBackend):
        from streamctl.backup.docker import DockerPlace

        return DockerPlace(tool.ctx, backend, tool.render)
    if isinstance(backend, SwarmBackend):
        from streamctl.backup.swarm import SwarmPlace

        return SwarmPlace(tool, backend)
    raise PreflightError(f"backups are implemented for the local, Docker and Swarm backends (this cluster runs "
                         f"on {getattr(backend, 'name', backend)})",
                         hint="remove the `backup:` section, or use --backend local, docker or swarm")


class PgBackRest:
    """One cluster's pgBackRest: `config` is the file every invocation names, `place` where it runs
    (backup/local.py: this machine; backup/docker.py: the node's container; backup/swarm.py: the
    repository's service)."""

    def __init__(self, ctx: ClusterContext, backend: Any) -> None:
        if ctx.topology.backup is None or not ctx.topology.backup.enabled:
            raise PreflightError(f"cluster {ctx.topology.cluster} has no backup repository",
                                 hint="add a `backup:` section with a repository to the topology "
                                      "(see README, Backups and restore)")
        self.ctx = ctx
        self.spec: BackupSpec = ctx.topology.backup
        self.place = _place(self, backend)
        self.backend_name = str(getattr(backend, "name", backend))
        self.home = self.place.home
        self.config = self.place.config

    @property
    def cluster(self) -> str:
        return self.ctx.topology.cluster

    def stanzas(self) -> list[Stanza]:
        """A cluster restored from a repository (`up --from-backup`) archives under a generation of its
        own: its nodes share the system id of the ones it came from, whose stanzas it must not extend."""
        prefix = stanza_prefix(self.cluster, self.ctx.store.read().get("backup_generation"))
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
            lines.append(f"repo1-path={self.place.repo_path(repository_path(self.ctx) or Path())}")
        lines.append(f"repo1-retention-full={spec.retention_full}")
        if spec.retention_diff is not None:
            lines.append(f"repo1-retention-diff={spec.retention_diff}")
        lines += [f"compress-type={spec.compression}", f"process-max={spec.parallelism}",
                  f"log-path={home / 'log'}", f"lock-path={home / 'lock'}", f"spool-path={home / 'spool'}",
                  "log-level-console=warn", "log-level-file=info", "start-fast=y",
                  "repo1-bundle=y",  # small files (a Citus node has a file per shard) copied in bundles
                  "", "[global:archive-push]", "archive-async=y", "", "[global:archive-get]", "archive-async=n"]
        for st in self.stanzas():
            group = ha.group_of(self.ctx.topology, st.node)
            if group is not None:  # every member: pgBackRest finds the leader (and a standby) itself
                lines += ["", f"[{st.name}]", *ha.stanza_lines(self.place, group, self.ctx.topology.pg_user,
                                                               st.node.database)]
                continue
            path, port, sock = self.place.pg_lines(st.node)
            lines += ["", f"[{st.name}]", f"pg1-path={path}", f"pg1-port={port}",
                      f"pg1-user={self.ctx.topology.pg_user}", f"pg1-database={st.node.database}",
                      f"pg1-socket-path={sock}"]
        return "\n".join(lines) + "\n"

    def write_config(self, node: Node | None = None) -> None:
        """The configuration file where pgBackRest runs (for `node`'s stanza, or every one), 0600 and the
        server user's, with the directories it names; a directory repository is created and checked."""
        self.place.write_config(self.render(), repository_path(self.ctx), node)

    def config_current(self, node: Node | None = None) -> bool:
        return self.place.read_config(node) == self.render()

    def check_repository(self) -> None:
        """A directory repository must exist and be writable by the server's user."""
        repo = repository_path(self.ctx)
        if repo is not None:
            self.place.check_repository(repo)

    def archive_command(self, stanza: str) -> str:
        return archive_push(self.config, stanza, *self.place.archive_options())

    def require_restores(self) -> None:
        if not self.place.restores:
            raise RefusedError(f"restoring a backup is not implemented on the {self.backend_name} backend "
                               "yet; nothing was changed", hint="restore the set on the local or Docker backend "
                               "(README, Backups and restore)")


    # -- running ------------------------------------------------------------------------------------
    def run(self, stanza: str | None, command: str, *args: str, what: str = "", timeout: float = 3600,
            node: Node | None = None, lock_wait: float = 0) -> str:
        """Run one pgBackRest command as the server's user where `node` runs (by default the node of the
        stanza; none: anywhere the repository is); its stdout, or a BackupError with its output.
        `lock_wait`: for so many seconds, a command refused for a lock another pgBackRest process holds
        (exit 50, e.g. an asynchronous archive-push into the same stanza) is run again."""
        argv = ["pgbackrest", f"--config={self.config}", *([f"--stanza={stanza}"] if stanza else []), *args,
                command]
        if node is None:
            node = next((st.node for st in self.stanzas() if st.name == stanza), None)
        # commands that connect (backup, check, stanza-create): libpq reads the password, never argv
        password = self.ctx.store.known_secrets(self.ctx.topology).get("postgres_password")
        deadline = time.monotonic() + lock_wait
        while True:
            try:
                code, out, err = self.place.run(node, argv, password, timeout)
            except subprocess.TimeoutExpired:
                raise BackupError(f"{what or command}: pgbackrest {command} did not finish in {timeout:.0f}s") \
                    from None
            if code != LOCK_HELD or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if code != 0:
            lines = [x for x in (err + out).strip().splitlines() if x.strip()][-12:]
            raise BackupError(f"{what or command}: pgbackrest {command} failed (exit {code})",
                              details=lines, hint=self.place.log_hint)
        return out

    def info(self, stanza: str | None = None) -> list[dict[str, Any]]:
        """`pgbackrest info` as JSON: one entry per stanza in the repository (or the one named)."""
        out = self.run(stanza, "info", "--output=json", what="read the backup repository", timeout=120)
        data = json.loads(out or "[]")
        return data if isinstance(data, list) else []
