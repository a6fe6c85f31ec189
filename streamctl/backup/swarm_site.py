"""One restored node of the Swarm backend while isolated (recover.Site): a one-shot service pinned to the
host that will run the node, on the restore's internal network (backends/swarm/restore.py). pgBackRest
fetches the node's files from a repository service of the restore's own on the manager (the repository
directory mounted, repository-host mode over TLS, each restored node's certificate admitted), then the
server runs there with no Citus and no archiving; its log is the task's output, and this process reaches
it through a relay in that repository's task (backends/swarm/relay.py), since nothing else is on that
network. The server listens there only: pg_hba trusts that network's addresses, which only the restore's
own services have."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import TYPE_CHECKING

from streamctl.backends.docker import spec
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.backup import HOME, host_options
from streamctl.backends.swarm.relay import Relay
from streamctl.backends.swarm.restore import CONFIG, RUN, STARTED, STOPPED, RestoreTask, fetch_script, server_script
from streamctl.config.model import Engine

if TYPE_CHECKING:
    from streamctl.backup.swarm import SwarmPlace
    from streamctl.config.model import Node

USER = spec.SERVER_USER[Engine.POSTGRES]
PORT = spec.CONTAINER_PORT[Engine.POSTGRES]


class SwarmSite:
    """Paths the server sees are the task's; `socket` is the relay's directory here, `log` a copy of the
    server's output (refreshed whenever it is read)."""

    def __init__(self, node: Node, place: SwarmPlace) -> None:
        self.node, self.place = node, place
        self.data = spec.PGDATA
        self.socket = place.ctx.store.root / "restore" / node.name
        self.server_socket = RUN
        self.port = PORT
        self.log = self.socket / "postgres.log"
        self.task: RestoreTask | None = None
        self.hba = ""
        self.relay: Relay | None = None
        self.archive_get = ""  # restore_command: archive-get from the restore's repository
        self._read = (0.0, "")

    def prepare(self) -> None:
        """The node's host chosen and recorded as its pin (so `up` runs it where its volume is), its
        certificate issued, the restore's network made."""
        b, node = self.place.backend, self.node
        pin = b.hosts.pin(node.name) or b.hosts.place(node)
        network = self.place.restore_network()
        tls = b._tls(node, True)
        assert tls is not None  # SwarmPlace refuses backed-up nodes without TLS
        text = self.place.render()
        cluster = b.topology.cluster
        secrets = [*sspec.tls_secrets(cluster, Engine.POSTGRES, tls),
                   sspec.SecretFile(sspec.secret_name(cluster, "pgbackrest-restore", text), CONFIG, text, USER, 0o600)]
        self.task = RestoreTask(b, node, pin.id, network, secrets)
        self.socket.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.place.sites[node.name] = self

    def fetch(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """`pgbackrest restore` in the task, from the restore's repository service; its exit code and output."""
        assert self.task is not None
        self.place.restore_repository()  # running
        repository = self.place.restore_repository_name()
        argv = [f"--config={CONFIG}" if a.startswith("--config=") else a for a in argv]
        host = host_options("repo1", repository, CONFIG)
        argv = [*argv[:-1], *host, argv[-1]]
        stanza = next(a for a in argv if a.startswith("--stanza="))
        self.archive_get = " ".join(["pgbackrest", f"--config={CONFIG}", stanza, f"--pg1-path={self.data}", *host,
                                     "archive-get", '%f "%p"'])
        dirs = [HOME, f"{HOME}/log", f"{HOME}/lock", f"{HOME}/spool", str(self.data)]
        self.task.run(fetch_script(argv, dirs))
        code = self.task.exit_code(timeout)
        return code, self.task.logs(), ""

    def put_file(self, name: str, text: str) -> None:
        """The isolated pg_hba: the socket's rules, and trust from the restore's network (the relay)."""
        self.hba = text + "host all all samenet trust\n"

    def remove_file(self, name: str) -> None:
        """The file lives in the task only."""

    def plain_conf(self) -> None:
        """Nothing: on Swarm no backup comes from a Patroni member (backups with ha are refused there)."""

    def source_port(self) -> int:
        return 0  # every node listens on the same port; the Citus catalog is rewritten by name (restore.py)

    def start(self, settings: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
        """The server in the task with the node's settings, then `settings`, listening on the restore's
        network only (the relay's way in); the relay opened once it runs."""
        assert self.task is not None
        options = [*self.node.settings, ("port", str(PORT)), ("unix_socket_directories", RUN), *settings,
                   ("listen_addresses", "*"), ("restore_command", self.archive_get)]
        argv = ["sh", "-c", "(isolated server)"]
        self.task.run(server_script(options, str(self.data), self.hba))
        self.task.wait_running()
        if self.task.state() != "running":
            return subprocess.CompletedProcess(argv, 1, "", self.log_text())
        self.relay = Relay(self.place.api, self.place.restore_repository(), (self.task.name, PORT), self.socket, PORT)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def finalize(self) -> None:
        """The task synced after the server stopped."""

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Only `stop` is asked for (either mode: Swarm's stop signal is a fast shutdown, then a sync)."""
        assert self.task is not None and "stop" in args
        self.task.stop()
        text = self.log_text(fresh=True)
        ok = "database system is shut down" in text and STOPPED in text
        return subprocess.CompletedProcess(["pg_ctl", *args], 0 if ok else 1, "", "" if ok else text[-2000:])

    def running(self) -> bool:
        return self.task is not None and self.task.state() == "running"

    def log_text(self, fresh: bool = False) -> str:
        """The server's output (what the task printed after the restore's), read at most every 0.5 s."""
        at, text = self._read
        if self.task is None or (not fresh and time.monotonic() - at < 0.5):
            return text
        full = self.task.logs()
        text = full.rsplit(STARTED, 1)[1] if STARTED in full else ""
        self._read = (time.monotonic(), text)
        if self.socket.exists():
            self.log.write_text(text)
        return text

    def log_lines(self, n: int = 15) -> list[str]:
        return self.log_text(fresh=True).splitlines()[-n:]

    def discard_data(self) -> None:
        """In place restores are refused on Swarm: never called here."""

    def close(self) -> None:
        """The relay and the task gone (the volume stays for `up`), and the restore's repository and
        network with the last one."""
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self.task is not None:
            self.task.remove()
        self.place.release(self.node.name)
        shutil.rmtree(self.socket, ignore_errors=True)
