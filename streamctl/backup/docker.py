"""pgBackRest on the Docker backend: it runs as postgres inside the node's container (the image carries
it), the directory repository on the engine's host mounted at the same path in every backed-up node's
container, each node's configuration, log, lock and spool in its volume beside PGDATA. Commands about no
running node (`info` before a cluster exists) run in a one-shot container of the node's image. A restored
node is its new volume in a one-shot container with no network, its socket and log in a host directory
under the new cluster's state, started with pg_ctl through `docker exec` (docker_site.py)."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import put_files
from streamctl.backends.docker.ha import MEMBER
from streamctl.backends.docker.pgbackrest_server import PASSFILE, serves
from streamctl.config.model import BACKED_UP_ROLES, Engine
from streamctl.engines.pgbackrest import host_options, passfile
from streamctl.errors import PreflightError

if TYPE_CHECKING:
    from streamctl.backends.docker.backend import DockerBackend
    from streamctl.backup.docker_site import DockerSite
    from streamctl.config.members import Group
    from streamctl.config.model import Node
    from streamctl.context import ClusterContext

USER = spec.SERVER_USER[Engine.POSTGRES]
PORT = spec.CONTAINER_PORT[Engine.POSTGRES]
SOCKET = "/var/run/postgresql"
RESTORE_RUN = "/run/streamctl-restore"  # a restored node's socket, log and isolated pg_hba (docker_site.py)


def exec_in(api: Any, container: str, argv: list[str], user: str = USER,
            environment: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`argv` in a running container; the environment goes with the exec, never on a command line."""
    with docker_errors(f"run {argv[0]} in {container[:12]}"):
        ex = api.exec_create(container, argv, user=user, environment=environment or None, workdir="/")
        out, err = api.exec_start(ex["Id"], demux=True)
        code = api.exec_inspect(ex["Id"])["ExitCode"]
    return int(code or 0), (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def standby_options(index: int, host: str, user: str, database: str | None) -> list[str]:
    """pgBackRest's pg<index>: a standby member's data, port and socket (the same paths in every member's
    container), through the TLS server on `host`, its name on the cluster's network."""
    k = f"pg{index}"
    return [f"--{k}-path={MEMBER.data_dir}", f"--{k}-port={PORT}", f"--{k}-socket-path={MEMBER.socket_dir}",
            f"--{k}-user={user}", *([f"--{k}-database={database}"] if database else []),
            *host_options(k, host, spec.BACKUP_CONFIG, spec.TLS_DIR)]


class DockerPlace:
    """Where pgBackRest runs for a cluster of the Docker backend: in the node's container."""

    home = PurePosixPath(spec.BACKUP_HOME)
    config = PurePosixPath(spec.BACKUP_CONFIG)
    log_hint = f"pgBackRest's log: {spec.BACKUP_HOME}/log in the node's container"
    restores = True
    redis_snapshots = True

    def __init__(self, ctx: ClusterContext, backend: DockerBackend, render: Callable[[], str]) -> None:
        self.ctx, self.backend, self.render = ctx, backend, render
        self.shells: dict[str, str] = {}  # node -> the container it runs in while restored (DockerSite)

    @property
    def api(self) -> Any:
        return self.backend.api

    def pg_lines(self, node: Node) -> tuple[str, int, str]:
        return spec.PGDATA, PORT, SOCKET

    def repo_path(self, repo: Path) -> str:
        return spec.BACKUP_REPO

    def _image(self) -> str:
        return next(n.image for n in self.ctx.topology.nodes() if n.role in BACKED_UP_ROLES)

    def _container(self, node: Node) -> str:
        """The node's container; under HA the leader's (pgBackRest's stanza there names its own data only)."""
        group = self.backend._groups.get(node.name)
        if group is not None and node.name not in self.shells:
            return self.backend.ha.leader_container(group, self.ctx.ca_path() if self.ctx.tls_on else None)
        return self.shells.get(node.name) or self.backend.container_id(node)

    def _containers(self, node: Node) -> list[str]:
        """Where the node's configuration goes: its container, or under HA every member's (each archives and
        may lead), the running ones."""
        group = self.backend._groups.get(node.name)
        if group is None or node.name in self.shells:
            return [self._container(node)]
        found = [self.backend.ha._find(m.name) for m in group.members]
        return [str(c.id) for c in found if c is not None and c.status == "running"]

    def _here(self, node: Node) -> bool:
        """Whether the node has a container pgBackRest can run in now (restoring, or running)."""
        from streamctl.backends.base import NodeState

        return node.name in self.shells or self.backend.observe(node).state is NodeState.RUNNING

    def _running(self) -> str | None:
        """A backed-up node's container (its configuration names every stanza), or None."""
        found = next((n for n in self.ctx.topology.nodes() if n.role in BACKED_UP_ROLES and self._here(n)), None)
        return self._container(found) if found is not None else None

    def _ids(self, container: str) -> tuple[int, int]:
        return self.backend.image_users(container, self._image(), container[:12])[USER]

    # -- the configuration file -----------------------------------------------------------------------
    def write_config(self, text: str, repo: Path | None, node: Node | None = None) -> None:
        """Into `node`'s container (else every backed-up node's that exists, and every node's being restored:
        an analytics replica restores from its primary's backup), with its directories."""
        nodes = [node] if node else [n for n in self.ctx.topology.nodes()
                                     if (n.role in BACKED_UP_ROLES or n.name in self.shells) and self._here(n)]
        for n in nodes:
            for container in self._containers(n):
                if repo is not None:
                    self.check_repository(repo, create=True, container=container)
                put_files(self.api, container, n.image, container[:12],
                          [spec.ContainerFile(str(self.config), text.encode(), 0o600, USER)], dir_mode=0o700)
                dirs = [str(self.home / d) for d in ("log", "lock", "spool")]
                code, out, err = exec_in(self.api, container, ["mkdir", "-p", "-m", "0700", *dirs])
                if code:
                    raise PreflightError(f"{n.name}: cannot make pgBackRest's directories: {(err or out).strip()}")

    def read_config(self, node: Node | None = None) -> str | None:
        """The node's file (under HA: every member's, None unless all hold the same); with no node, what a
        one-shot container would get (always current)."""
        if node is None:
            return self.render()
        if not self._here(node):
            return None
        texts = set()
        for container in self._containers(node):
            code, out, _ = exec_in(self.api, container, ["cat", str(self.config)])
            texts.add(out if code == 0 else None)
        return texts.pop() if len(texts) == 1 else None

    def group_lines(self, group: Group) -> list[tuple[str, int, str]]:
        """A stanza under HA lists the member pgBackRest runs in, alone: every member's data, port and socket are
        at the same paths in its own container, so one configuration serves each; backups run in the leader's,
        reaching a standby's data through the TLS server in its container, named on the backup's command line
        only (`standby_hosts`)."""
        return [(str(MEMBER.data_dir), PORT, str(MEMBER.socket_dir))]

    def standby_hosts(self, group: Group, streaming: list[str]) -> tuple[list[str], str | None]:
        """The backup runs in the leader's container; each streaming standby's data is pg2.. there, reached
        through the pgBackRest TLS server in its own container (backends/docker/pgbackrest_server.py) with the
        group's certificate, which the leader's container holds too. The processes that server starts read the
        password from a file in the standby's volume, written now (0600; rotated passwords included). None
        when TLS is off (no unauthenticated server ever runs) or the standbys' containers predate the server:
        the backup then comes from the leader, and the reason is returned."""
        if not self.backend.tls_covers(group.node):
            return [], "tls is off: pgBackRest reaches a standby's container only through its TLS server"
        found = [(name, c) for name in streaming if (c := self.backend.ha._find(name)) is not None and serves(c.attrs)]
        if not found:
            return [], "no standby's container runs pgBackRest's TLS server yet (`up` recreates them)"
        password = self.ctx.store.known_secrets(self.ctx.topology)["postgres_password"]
        user, options = self.ctx.topology.pg_user, []
        for i, (name, c) in enumerate(found, start=2):
            put_files(self.api, c.id, str(c.attrs["Config"]["Image"]), c.name, [spec.ContainerFile(
                PASSFILE, passfile(user, password).encode(), 0o600, USER, stand_in=b"<pgpass>")],
                self.backend._user_ids, dir_mode=0o700)  # pgBackRest's directory stays postgres's alone
            options += standby_options(i, name, user, group.node.database)
        return options, None

    def check_repository(self, repo: Path, create: bool = False, container: str | None = None) -> None:
        """The directory must exist (`up` creates it) and belong to the image's postgres user: a directory
        Docker made for the mount (root's, empty) is given to it."""
        if not repo.exists():
            if not create:
                raise PreflightError(f"backup.repository.path: {repo} does not exist",
                                     hint="check the path (relative paths start at the topology file)")
            repo.mkdir(mode=0o750, parents=True, exist_ok=True)  # nodes may write at once
        if not repo.is_dir():
            raise PreflightError(f"backup.repository.path: {repo} is not a directory")
        if container is None:
            return
        uid, gid = self._ids(container)
        st = repo.stat()
        if st.st_uid != uid:
            if any(repo.iterdir()):
                raise PreflightError(f"backup.repository.path: {repo} is not owned by uid {uid}, the postgres "
                                     f"user of the image, which runs pgBackRest (owner uid {st.st_uid})",
                                     hint=f"chown -R {uid}:{gid} {repo}")
            shutil.chown(repo, uid, gid)

    # -- running --------------------------------------------------------------------------------------
    def run(self, node: Node | None, argv: list[str], password: str | None,
            timeout: float) -> tuple[int, str, str]:
        """In the node's container (any running backed-up node's for a command about none), else in a
        one-shot container with the repository and the configuration (`timeout` bounds that one; an exec
        has none of its own: pgBackRest's timeouts, such as check's --archive-timeout, bound it)."""
        container = self._container(node) if node is not None else self._running()
        if container is not None:
            return exec_in(self.api, container, argv, environment={"PGPASSWORD": password} if password else None)
        return self._one_shot(argv, timeout)

    def archive_options(self) -> list[str]:
        return []

    def _one_shot(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        binds = self.repo_binds()
        labels = {spec.LABEL_CLUSTER: self.ctx.topology.cluster, **self.ctx.ownership.labels()}
        with docker_errors("run pgbackrest in a one-shot container"):
            created = self.api.create_container(
                self._image(), command=argv, user=USER, labels=labels, working_dir="/",
                host_config=self.api.create_host_config(binds=binds, network_mode="none"))
        cid = created["Id"]
        try:
            put_files(self.api, cid, self._image(), "pgbackrest", [
                spec.ContainerFile(str(self.config), self.render().encode(), 0o600, USER)], dir_mode=0o700)
            with docker_errors("run pgbackrest in a one-shot container"):
                self.api.start(cid)
                code = self.api.wait(cid, timeout=timeout)["StatusCode"]
                out = self.api.logs(cid, stdout=True, stderr=False).decode(errors="replace")
                err = self.api.logs(cid, stdout=False, stderr=True).decode(errors="replace")
        finally:
            with docker_errors("remove the one-shot container"):
                self.api.remove_container(cid, force=True)
        return int(code), out, err

    def repo_binds(self) -> dict[str, dict[str, str]]:
        """The directory repository, mounted where the configuration says (any node restored from it needs
        it, an analytics replica restored from its primary's backup too)."""
        repo = self.ctx.topology.backup.repository_dir(self._base()) if self.ctx.topology.backup else None
        return {str(repo): {"bind": spec.BACKUP_REPO, "mode": "rw"}} if repo is not None else {}

    def _base(self) -> Path:
        return self.ctx.topology_path.parent if self.ctx.topology_path else Path.cwd()

    def restore_site(self, node: Node) -> DockerSite:
        from streamctl.backup.docker_site import DockerSite

        return DockerSite(node, self)

    def read_file(self, node: Node, path: str) -> bytes:
        """From the node's running container."""
        container = self.backend.container_id(node)
        with docker_errors(f"read {path} from {node.name}"):
            stream, _ = self.api.get_archive(container, path)
            raw = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read() if member else b""

    def put_redis_files(self, node: Node, files: dict[str, bytes]) -> None:
        """Into the node's new volume (made here, as `up` would), through a container never started."""
        from streamctl.backends.docker.container import volume_exists
        from streamctl.backup.pgbackrest import BackupError

        s = self.backend.spec(node)
        if volume_exists(self.api, s.volume):
            raise BackupError(f"{node.name}: volume {s.volume} exists; a restore never writes over data")
        with docker_errors(f"create volume {s.volume}"):
            self.api.create_volume(s.volume, labels={**s.labels})
            created = self.api.create_container(s.image, labels=s.labels, host_config=self.api.create_host_config(
                binds={s.volume: {"bind": s.mount, "mode": "rw"}}, network_mode="none"))
        try:
            put_files(self.api, created["Id"], s.image, s.name, [
                spec.ContainerFile(f"{s.mount}/{name}", content, 0o600, spec.SERVER_USER[node.engine])
                for name, content in files.items()])
        finally:
            with docker_errors("remove the one-shot container"):
                self.api.remove_container(created["Id"], force=True)

    def own(self, path: Path) -> None:
        """Root's files in the repository are fine: pgBackRest never touches streamctl's directory."""
