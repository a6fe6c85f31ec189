"""A restored node's one-shot service on Swarm: pinned to the host that will run the node (its volume is
made there, the one `up` then mounts), on an internal overlay network of the restore's own (no gateway,
none of the original cluster's services: the restored coordinator cannot reach the original workers),
with the new cluster's certificate and pgBackRest's configuration as secrets. Its command changes with
the phase: first `pgbackrest restore` (the task ends), then the isolated server in the foreground (its log
is the task's output, read through the manager); stopping the service stops the server (fast shutdown)
and syncs what it wrote. The engine talked to is the manager's: no exec reaches other hosts."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from streamctl.backends.base import fingerprint
from streamctl.backends.docker import owner
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.service import NS
from streamctl.config.model import Engine, Node
from streamctl.readiness import Readiness

USER = docker_spec.SERVER_USER[Engine.POSTGRES]
RUN = "/run/streamctl-restore"  # the isolated server's socket and pg_hba, in the task only
CONFIG = "/etc/streamctl-restore/pgbackrest.conf"  # pgBackRest's configuration during the restore (a secret)
STARTED = "streamctl-restore: server"  # the line the task prints before the isolated server's output
STOPPED = "streamctl-restore: stopped"


def network_name(cluster: str) -> str:
    return f"{cluster}-restore"


def ensure_network(backend: Any) -> str:
    """Internal (no route out of it) and not attachable: only the restore's services join it."""
    name = network_name(backend.topology.cluster)
    with backend._lock:
        owner.ensure_network(backend.client, name, backend.topology.cluster, backend.ctx.ownership,
                             driver="overlay", attachable=False, internal=True, scope="swarm")
    return name


def remove_network(backend: Any) -> None:
    name = network_name(backend.topology.cluster)
    with docker_errors(f"remove network {name}"):
        for net in owner.own_networks(backend.client, name, backend.topology.cluster, backend.ctx.ownership):
            backend.hosts.remove_network(net)


def _as_user(argv: list[str]) -> str:
    return f"setpriv --reuid={USER} --regid={USER} --init-groups -- {shlex.join(argv)}"


def fetch_script(argv: list[str], dirs: list[str]) -> str:
    """The restore's first phase: pgBackRest's directories and PGDATA made, then the restore as postgres."""
    return f"install -d -o {USER} -g {USER} -m 0700 {shlex.join(dirs)} && exec {_as_user(argv)}"


def server_script(options: list[tuple[str, str]], data: str, hba: str) -> str:
    """The second phase: the isolated server as a child (SIGTERM from Swarm becomes a fast shutdown), then
    a sync of everything it wrote without fsync."""
    argv = ["postgres", "-D", data, *(a for k, v in options for a in ("-c", f"{k}={v}"))]
    return (f"install -d -o {USER} -g {USER} -m 0755 {RUN} && printf %s {shlex.quote(hba)} > {RUN}/restore_hba.conf"
            f" && chown {USER} {RUN}/restore_hba.conf && echo {shlex.quote(STARTED)}"
            f" && trap 'kill -INT $pid' INT TERM; {_as_user(argv)} 2>&1 & pid=$!; wait $pid; wait $pid;"
            f" sync; echo {shlex.quote(STOPPED)}")


@dataclass
class RestoreTask:
    """One restored node's service, `<cluster>-<node>-restore`."""

    backend: Any
    node: Node
    pin_id: str
    network: str  # "": on no network (a task that only reads or writes the node's volume)
    secrets: list[sspec.SecretFile]
    suffix: str = "restore"  # of the service's name, `<cluster>-<node>-<suffix>`

    @property
    def name(self) -> str:
        return docker_spec.container_name(self.backend.topology.cluster, f"{self.node.name}-{self.suffix}")

    def find(self) -> Any | None:
        with docker_errors(f"find service {self.name}"):
            found = [s for s in self.backend.client.services.list(filters={"name": self.name}) if s.name == self.name]
        return found[0] if found else None

    def run(self, script: str) -> None:
        """The service made (again) to run `script` once, as root, on the node's host."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, SecretReference, ServiceMode

        b = self.backend
        s = b.spec(self.node)
        c = s.container
        labels = {**c.labels, docker_spec.LABEL_NODE: f"{self.node.name}-{self.suffix}"}
        refs = []
        for f in self.secrets:
            uid, gid = b.users.ids(c.image, f.owner) if f.owner else (0, 0)
            refs.append(SecretReference(b._ensure_secret(f), f.name, filename=f.target, uid=str(uid), gid=str(gid),
                                        mode=f.mode))
        mounts = [Mount(c.mount, c.volume, type="volume", labels=dict(c.labels))]
        if c.shm_size:
            from streamctl.backends.swarm.service import _bytes

            mounts.append(Mount("/dev/shm", None, type="tmpfs", tmpfs_size=_bytes(c.shm_size)))
        kwargs = {"image": c.image, "name": self.name, "command": ["sh", "-c", script], "user": "root",
                  "hostname": self.node.name, "labels": {**labels, docker_spec.LABEL_FINGERPRINT: fingerprint(script)},
                  "container_labels": labels, "mounts": mounts, "secrets": refs,
                  "networks": [self.network] if self.network else [],
                  "mode": ServiceMode("replicated", replicas=1), "restart_policy": RestartPolicy(condition="none"),
                  "stop_grace_period": 300 * NS, "constraints": [f"node.id == {self.pin_id}"],
                  "endpoint_spec": EndpointSpec(mode="dnsrr")}
        found = self.find()
        with docker_errors(f"create service {self.name}"):
            if found is not None:  # the phase before ended (restart: none): a new service for the next
                found.remove()
            b.client.services.create(**kwargs)

    def task(self) -> dict[str, Any] | None:
        """The newest task of the service's current definition."""
        service = self.find()
        if service is None:
            return None
        version = service.attrs["Version"]["Index"]
        tasks = [t for t in service.tasks() if (t.get("SpecVersion") or {}).get("Index", version) == version]
        return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)

    def state(self) -> str:
        task = self.task()
        return str(task["Status"]["State"]) if task else "missing"

    def exit_code(self, timeout: float) -> int:
        """Once the task ended: its exit code (a task that never ran: 125, with Swarm's reason in the log)."""
        ended = ("complete", "failed", "rejected", "shutdown", "orphaned")
        Readiness(f"{self.name} to finish", lambda: self.state() in ended, timeout, interval=0.5,
                  logs=lambda: self.logs().splitlines()[-15:]).wait()
        task = self.task() or {}
        code = (task.get("Status", {}).get("ContainerStatus") or {}).get("ExitCode")
        return int(code) if code is not None else 125

    def wait_running(self, timeout: float = 120.0) -> None:
        Readiness(f"{self.name} to run", lambda: self.state() in ("running", "complete", "failed", "rejected"),
                  timeout, interval=0.3, logs=lambda: self.logs().splitlines()[-15:]).wait()

    def logs(self) -> str:
        service = self.find()
        if service is None:
            return ""
        with docker_errors(f"read the logs of {self.name}"):
            raw = b"".join(service.logs(stdout=True, stderr=True))
        text = raw.decode(errors="replace")
        task = self.task()
        if task and task["Status"].get("Err"):
            text += f"\n[swarm] task {task['Status']['State']}: {task['Status']['Err']}\n"
        return text

    def stop(self, timeout: float = 330.0) -> None:
        """The server's fast shutdown and the sync after it (the service stays: its logs tell how it ended)."""
        service = self.find()
        if service is None:
            return
        with docker_errors(f"scale {self.name} to 0"):
            service.scale(0)
        self.backend.hosts.wait_no_task(service, timeout)

    def remove(self) -> None:
        service = self.find()
        if service is not None:
            with docker_errors(f"remove service {self.name}"):
                service.remove()
