"""pgBackRest on the Swarm backend, in pgBackRest's repository-host mode: the repository is a service of
its own on the manager (backends/swarm/backup.py), and every command but archive-push runs in its task
through `docker exec`, reaching a node's data through the pgBackRest TLS server beside the node's
PostgreSQL; archive-push (the node's archive_command) reaches the repository's server. One configuration
file, the same text at the same path on both sides: a secret of the repository's service, and in each
node's volume, written through SQL (the node's task may run on any host). A restored node recovers in a
one-shot task on its host (swarm_site.py), from a repository service of the restore's own. Redis's snapshot
is read and written by one-shot tasks on Redis's host and kept in the repository directory (swarm_redis.py)."""

from __future__ import annotations

import posixpath
import threading
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm.backup import Repository, host_options
from streamctl.backup.docker import DockerPlace, exec_in
from streamctl.backup.swarm_redis import RepositorySnapshots, read_from_task, write_into_volume
from streamctl.config.model import BACKED_UP_ROLES
from streamctl.errors import PreflightError, StreamctlError

if TYPE_CHECKING:
    from pathlib import Path

    from streamctl.backends.swarm.backend import SwarmBackend
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.backup.swarm_site import SwarmSite
    from streamctl.config.model import Node

_LOCK = threading.Lock()  # the archiving steps of several nodes run at once; one repository service
_REMOTE = ("stanza-create", "check", "backup")  # the commands that reach the node's data


class SwarmPlace(DockerPlace):
    """Where pgBackRest runs for a cluster of the Swarm backend: in the repository's service."""

    log_hint = f"pgBackRest's log: {spec.BACKUP_HOME}/log in the backup repository's and the node's containers"
    backend: SwarmBackend  # type: ignore[assignment]
    restores = True
    redis_snapshots = True

    def __init__(self, tool: PgBackRest, backend: SwarmBackend) -> None:
        super().__init__(tool.ctx, backend, tool.render)  # type: ignore[arg-type] # only the engine's client
        self.tool = tool
        self.repository = Repository(backend)
        self.sites: dict[str, SwarmSite] = {}  # the nodes being restored, by name
        self._restore_repo: str | None = None  # its running container, once made
        spec_ = tool.spec
        if spec_.repository.s3 is not None:
            raise PreflightError("backup.repository: on Swarm the repository is a directory on the manager "
                                 "(repository: {path: DIR}); S3 repositories are not implemented there yet")
        bare = [n.name for n in self.ctx.topology.nodes() if n.role in BACKED_UP_ROLES and not backend.tls_covers(n)]
        if bare:
            raise PreflightError(f"backups on Swarm need TLS on every backed-up node ({', '.join(bare)} has none): "
                                 "pgBackRest's hosts prove themselves with the cluster CA's certificates",
                                 hint="turn tls on (the default), or remove the `backup:` section")

    @property
    def api(self) -> Any:
        return self.backend.client.api

    @property
    def snapshots(self) -> RepositorySnapshots:
        """Where the sets' Redis snapshots are kept: the repository directory, on the manager."""
        return RepositorySnapshots(self)

    def read_file(self, node: Node, path: str) -> bytes:
        """Redis's snapshot, read on the host of its task."""
        return read_from_task(self.backend, node, path)

    def put_redis_files(self, node: Node, files: dict[str, bytes]) -> None:
        write_into_volume(self.backend, node, files)

    def _container(self, node: Node) -> str:
        """Every command runs in the repository's task (made or updated first: its configuration is one of
        its secrets, so a task Swarm replaces has it too)."""
        return self._repository()

    def _repository(self) -> str:
        from streamctl.backup.pgbackrest import repository_path

        with _LOCK:
            auth = [f"{st.node.name}={st.name}" for st in self.tool.stanzas()]
            return self.repository.container(self._image(), str(repository_path(self.ctx)), auth,
                                             (str(self.config), self.render()))

    # -- the configuration file -----------------------------------------------------------------------
    def write_config(self, text: str, repo: Path | None, node: Node | None = None) -> None:
        """The repository's copy, and `node`'s (through SQL, in its volume beside PGDATA, where the node's
        pgBackRest server made the directory)."""
        self._repository()
        if node is not None:
            self.backend.write_pg_file(node, posixpath.relpath(self.config, spec.PGDATA), text)

    def read_config(self, node: Node | None = None) -> str | None:
        """The node's copy (None: the repository's, always current)."""
        if node is None:
            return self.render()
        try:
            with self.ctx.pg_connect(node.name) as conn:
                row = conn.execute("SELECT pg_read_file(%s, 0, 1048576, true)", (str(self.config),)).fetchone()
        except StreamctlError:  # not running yet: `up` starts it before it writes the file
            return None
        return str(row[0]) if row and row[0] is not None else None

    def check_repository(self, repo: Path, create: bool = False, container: str | None = None) -> None:
        """The directory is on the manager: the repository's service prepares it (and refuses a foreign one)."""
        self._repository()

    # -- running --------------------------------------------------------------------------------------
    def run(self, node: Node | None, argv: list[str], password: str | None,
            timeout: float) -> tuple[int, str, str]:
        """In the repository's task; a command that reaches a node's data names the node's server. A
        restore runs in the restored node's own task, on its host."""
        site = self.sites.get(node.name) if node is not None else None
        if site is not None and argv[-1] == "restore":
            return site.fetch(argv, timeout)
        if node is not None and argv[-1] in _REMOTE:
            service = spec.container_name(self.ctx.topology.cluster, node.name)
            argv = [*argv[:-1], *host_options("pg1", service, str(self.config)), argv[-1]]
        return exec_in(self.api, self._repository(), argv)

    def archive_options(self) -> list[str]:
        """archive-push, on the node, pushes to the repository's server."""
        return host_options("repo1", self.repository.name, str(self.config))

    # -- restores -------------------------------------------------------------------------------------
    def restore_site(self, node: Node) -> SwarmSite:  # type: ignore[override]
        from streamctl.backup.swarm_site import SwarmSite

        return SwarmSite(node, self)

    def restore_network(self) -> str:
        from streamctl.backends.swarm.restore import ensure_network

        return ensure_network(self.backend)

    def _restore_repository(self) -> Repository:
        from streamctl.backends.swarm.restore import network_name

        return Repository(self.backend, "restore-repo", network_name(self.ctx.topology.cluster))

    def restore_repository_name(self) -> str:
        return self._restore_repository().name

    def restore_repository(self) -> str:
        """The restore's own repository service on the manager, on the restore's network, admitting every
        node being restored (made once, when they are all known): its running container."""
        from streamctl.backends.swarm.restore import CONFIG
        from streamctl.backup.pgbackrest import repository_path

        with _LOCK:
            if self._restore_repo is None:
                auth = [f"{name}=*" for name in sorted(self.sites)]
                self._restore_repo = self._restore_repository().container(
                    self._image(), str(repository_path(self.ctx)), auth, (CONFIG, self.render()))
            return self._restore_repo

    def release(self, node: str) -> None:
        """A restored node done with; after the last one the restore's repository service and network go."""
        from streamctl.backends.swarm.restore import remove_network

        with _LOCK:
            self.sites.pop(node, None)
            if self.sites:
                return
            self._restore_repo = None
            repo = self._restore_repository()
            service = repo.find()
            if service is not None:
                with docker_errors(f"remove service {repo.name}"):
                    service.remove()
        remove_network(self.backend)
