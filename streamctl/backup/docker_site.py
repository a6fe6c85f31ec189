"""A restored node of the Docker backend while isolated (backup/docker.py's place restores through it): its new
volume in a one-shot container with no network, its socket and log in a host directory under the new cluster's
state, started with pg_ctl through `docker exec`."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.ha import MEMBER
from streamctl.backup.docker import PORT, RESTORE_RUN, USER, exec_in

if TYPE_CHECKING:
    from streamctl.backup.docker import DockerPlace
    from streamctl.config.model import Node


class DockerSite:
    """One restored node of the Docker backend while isolated: its new volume in a container with no
    network, the repository mounted, its socket and log in a host directory (so this process connects and
    reads them as on the local backend)."""

    def __init__(self, node: Node, place: DockerPlace) -> None:
        self.node, self.place = node, place
        # under HA the volume is the group's first member's, the data where its Patroni finds it: `up` starts
        # that member alone and it registers the data as the group's leader (backends/docker/ha.py)
        self.patroni = node.name in place.backend._groups
        self.data = str(MEMBER.data_dir) if self.patroni else spec.PGDATA
        self.socket = place.ctx.store.root / "restore" / node.name
        self.server_socket = RESTORE_RUN
        self.port = PORT
        self.log = self.socket / "postgres.log"
        self.container: str | None = None
        self.settings: list[tuple[str, str]] = []

    @property
    def api(self) -> Any:
        return self.place.api

    def prepare(self) -> None:
        """The node's volume (new: a restore never writes over data) and its one-shot container, running."""
        from streamctl.backends.docker.container import volume_exists
        from streamctl.backup.pgbackrest import BackupError

        backend, node = self.place.backend, self.node
        s = backend.spec(node)
        if volume_exists(self.api, s.volume):
            raise BackupError(f"{node.name}: volume {s.volume} exists; a restore never writes over data",
                              hint="`streamctl down --volumes` first, or restore into another cluster")
        with docker_errors(f"create volume {s.volume}"):
            self.api.create_volume(s.volume, labels={**s.labels})
        self.socket.mkdir(mode=0o755, parents=True, exist_ok=True)
        binds = {s.volume: {"bind": s.mount, "mode": "rw"}, str(self.socket): {"bind": RESTORE_RUN, "mode": "rw"},
                 **{h: {"bind": m, "mode": "rw"} for h, m in s.binds}, **self.place.repo_binds()}
        with docker_errors(f"create the restore container of {node.name}"):
            created = self.api.create_container(
                s.image, command=["sleep", "infinity"], name=f"{s.name}-restore", labels=s.labels,
                host_config=self.api.create_host_config(binds=binds, network_mode="none", init=True,
                                                        shm_size=s.shm_size))
            self.container = str(created["Id"])
            self.api.start(self.container)
        self.place.shells[node.name] = self.container
        uid, gid = self.place._ids(self.container)
        shutil.chown(self.socket, uid, gid)
        code, out, err = exec_in(self.api, self.container, ["install", "-d", "-o", USER, "-g", USER, "-m", "0700",
                                                            self.data], user="root")
        if code:
            raise BackupError(f"{node.name}: cannot make {self.data}: {(err or out).strip()}")
        self.settings = [("listen_addresses", "*"), *node.settings]

    def plain_conf(self) -> None:
        """A copy of a Patroni member's data for a node Patroni does not run (an analytics replica restored from
        its primary under HA): Patroni's postgresql.conf (its member's paths, pg_hba, archive_command, standbys)
        replaced by initdb's, which Patroni kept aside; the container gives the node's settings. A group's copy
        keeps Patroni's: its Patroni starts on it and rewrites it."""
        from streamctl.backup.ha import PATRONI_BASE
        from streamctl.backup.pgbackrest import BackupError

        if self.patroni or self.container is None:
            return
        script = ('cd "$0" && if [ -f "$1" ]; then mv -f "$1" postgresql.conf && rm -f patroni.dynamic.json; fi')
        code, out, err = exec_in(self.api, self.container, ["sh", "-c", script, self.data, PATRONI_BASE])
        if code:
            raise BackupError(f"{self.node.name}: cannot replace Patroni's postgresql.conf in the restored copy: "
                              f"{(err or out).strip()}")

    def put_file(self, name: str, text: str) -> None:
        path = self.socket / name
        path.write_text(text)
        path.chmod(0o644)

    def remove_file(self, name: str) -> None:
        (self.socket / name).unlink(missing_ok=True)

    def source_port(self) -> int:
        """0: every Docker node listens on the same port under its name, on its own cluster's network, so the
        restored nodes (same names, another network) are what Citus's catalog names already."""
        return 0

    def start(self, settings: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
        """pg_ctl start with the node's settings, then `settings` (they win), on the host directory's socket."""
        self.log.unlink(missing_ok=True)
        options = [*self.settings, ("port", str(PORT)), ("unix_socket_directories", RESTORE_RUN), *settings]
        line = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in options)
        return self.pg_ctl("-l", f"{RESTORE_RUN}/{self.log.name}", "-W", "-o", line, "start")

    def finalize(self) -> None:
        """Nothing to write (the node's container gives its settings on the server's command line; under HA
        its Patroni writes them); what the isolated server wrote without fsync is flushed by the engine's host."""
        if self.container is None:
            return
        if self.patroni:  # the source's cached dynamic configuration: the new group's comes from its own Patroni
            exec_in(self.api, self.container, ["rm", "-f", f"{self.data}/patroni.dynamic.json"])
        exec_in(self.api, self.container, ["sync"], user="root")

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.container is not None
        argv = ["sh", "-c", 'umask 022; exec pg_ctl -D "$0" "$@"', self.data, *args]
        code, out, err = exec_in(self.api, self.container, argv)
        return subprocess.CompletedProcess(argv, code, out, err)

    def running(self) -> bool:
        if self.container is None:
            return False
        return exec_in(self.api, self.container, ["test", "-f", f"{self.data}/postmaster.pid"])[0] == 0

    def log_lines(self, n: int = 15) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.splitlines()[-n:]

    def discard_data(self) -> None:
        """Nothing here: the volume is still mounted in this site's container until `close`; an in-place restore
        that fails removes it afterwards, then copies back what it kept aside (docker_aside.put_back)."""

    def close(self) -> None:
        """The one-shot container removed (the volume stays for `up`), the host directory too."""
        if self.container is not None:
            with docker_errors(f"remove the restore container of {self.node.name}"):
                self.api.remove_container(self.container, force=True)
            self.place.shells.pop(self.node.name, None)
            self.container = None
        shutil.rmtree(self.socket, ignore_errors=True)

