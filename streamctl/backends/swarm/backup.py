"""pgBackRest on Swarm, as services: a backed-up node's task runs pgBackRest's TLS server beside PostgreSQL
(the repository host's `backup` and `check` reach its data through it), and the repository is a service of
its own, `<cluster>-backup`, pinned to the manager, running pgBackRest's TLS server (the nodes' archive-push
reaches the repository through it) with the manager's repository directory mounted. Both servers take
their settings on the command line (no configuration file is read when they start); each client names the
configuration file the other side's process reads (`--pg1-host-config`, `--repo1-host-config`). Clients
prove themselves with the cluster CA's certificates: a node's server accepts only the repository's
(`REPOSITORY`), the repository's only each node's own, for its own stanza."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamctl.backends.base import fingerprint
from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.pgbackrest_server import beside, prepare_line, server_line
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.service import NS
from streamctl.config.model import Engine
from streamctl.engines import pgbackrest
from streamctl.engines.pgbackrest import TLS_PORT
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.backends.swarm.backend import SwarmBackend

REPOSITORY = "backup"  # the repository's service is <cluster>-backup; its certificate's common name
PORT = TLS_PORT  # pgBackRest's TLS server, on the cluster's overlay network only
USER = docker_spec.SERVER_USER[Engine.POSTGRES]
HOME = docker_spec.BACKUP_HOME


def host_options(kind: str, host: str, config: str) -> list[str]:
    """A client's options to reach `host`'s pgBackRest server (`kind`: pg1 or repo1) with this task's own
    certificate (its secrets); `config`: the file the process started there reads."""
    return pgbackrest.host_options(kind, host, config, sspec.SECRETS_DIR)


def node_command(command: list[str]) -> list[str]:
    """A backed-up node's service command: pgBackRest's server in the background, accepting the repository's
    certificate, started again should it end (libpq in the processes it starts reads the password from the
    environment: the server's socket asks for one), then the image's entrypoint with the node's own command,
    as it would have run."""
    password = f"{sspec.SECRETS_DIR}/postgres_password"
    line = beside(f'PGPASSWORD="$(cat {password})"', "*", sspec.SECRETS_DIR, [f"{REPOSITORY}=*"])
    return ["sh", "-c", f'{line} exec docker-entrypoint.sh "$@"', "sh", *command]


def repository_command(auth: list[str]) -> list[str]:
    return ["sh", "-c", f"{prepare_line()} && exec {server_line('*', sspec.SECRETS_DIR, auth)}"]


def prepare_directory(api: Any, image: str, path: str, labels: dict[str, str]) -> None:
    """The repository directory on the manager, made when missing (Docker makes a bind's missing source)
    and given to the image's postgres user when it is empty; a non-empty one of another owner is refused."""
    from streamctl.errors import PreflightError

    script = (f'd={docker_spec.BACKUP_REPO}; [ "$(stat -c %U "$d")" = {USER} ] && exit 0; '
              f'[ -z "$(ls -A "$d")" ] || {{ echo "owner uid $(stat -c %u "$d"), not $(id -u {USER})"; exit 3; }}; '
              f"chown {USER}:{USER} \"$d\"")
    with docker_errors("prepare the backup repository directory on the manager"):
        created = api.create_container(image, command=["sh", "-c", script], user="root", labels=labels,
                                       host_config=api.create_host_config(
                                           binds={path: {"bind": docker_spec.BACKUP_REPO, "mode": "rw"}},
                                           network_mode="none"))
        try:
            api.start(created["Id"])
            code = api.wait(created["Id"], timeout=120)["StatusCode"]
            out = api.logs(created["Id"]).decode(errors="replace").strip()
        finally:
            api.remove_container(created["Id"], force=True)
    if code:
        raise PreflightError(f"backup.repository.path: {path} on the manager is not usable by the image's "
                             f"postgres user ({out or f'exit {code}'})", hint=f"chown -R it to {USER}'s uid there")


class Repository:
    """The repository's service on the manager (made, or updated when its definition changed) and its
    running task's container, on the manager's own engine: `docker exec` reaches it."""

    def __init__(self, backend: SwarmBackend, role: str = REPOSITORY, network: str | None = None) -> None:
        """`role`: the service's name in the cluster and its certificate's; `network`: another network than
        the cluster's (a restore's own, backup/swarm_site.py)."""
        self.backend = backend
        self.cluster = backend.topology.cluster
        self.role, self.network = role, network
        self.name = docker_spec.container_name(self.cluster, role)

    def container(self, image: str, path: str, auth: list[str], config: tuple[str, str],
                  timeout: float = 120.0) -> str:
        """The id of the running task's container, the service made or updated first when it must be.
        `config`: pgBackRest's configuration file (where, what), a secret so that a new task has it too."""
        from docker.types import EndpointSpec, Mount, RestartPolicy, SecretReference, ServiceMode

        b = self.backend
        tls = b.ctx.tls.ensure(self.role, {self.name, self.role})
        where, text = config
        secrets = [*sspec.tls_secrets(self.cluster, Engine.POSTGRES, tls),
                   sspec.SecretFile(sspec.secret_name(self.cluster, "pgbackrest-conf", text), where, text, USER, 0o600)]
        command = repository_command(auth)
        labels = {docker_spec.LABEL_CLUSTER: self.cluster, docker_spec.LABEL_NODE: self.role,
                  **b.ctx.ownership.labels()}
        mark = fingerprint({"image": image, "command": command, "path": path,
                            "secrets": sorted(s.name for s in secrets),
                            **({"network": self.network} if self.network else {})})
        found = self.find()
        if found is None or (found.attrs["Spec"].get("Labels") or {}).get(docker_spec.LABEL_FINGERPRINT) != mark:
            prepare_directory(b.client.api, image, path, labels)
            uid, gid = b.users.ids(image, USER)
            kwargs = {
                "image": image, "name": self.name, "args": command, "container_labels": labels,
                "labels": {**labels, docker_spec.LABEL_FINGERPRINT: mark},
                "mounts": [Mount(docker_spec.BACKUP_REPO, path, type="bind")],
                "secrets": [SecretReference(b._ensure_secret(s), s.name, filename=s.target, uid=str(uid),
                                            gid=str(gid), mode=s.mode) for s in secrets],
                "networks": [self.network or b.network], "mode": ServiceMode("replicated", replicas=1),
                "restart_policy": RestartPolicy(condition="any", delay=2 * NS, max_attempts=0),
                "constraints": [f"node.id == {b.hosts.local_id}"], "endpoint_spec": EndpointSpec(mode="dnsrr")}
            with docker_errors(f"{'update' if found else 'create'} service {self.name}"):
                if found is None:
                    if self.network is None:
                        b._ensure_network()
                    b.client.services.create(**kwargs)
                else:
                    found.update(**kwargs)
        return self._running(timeout)

    def find(self) -> Any | None:
        with docker_errors(f"find service {self.name}"):
            found = [s for s in self.backend.client.services.list(filters={"name": self.name}) if s.name == self.name]
        return found[0] if found else None

    def _running(self, timeout: float) -> str:
        """The container of the service's current task once it runs (an updated service's old one stops)."""
        got: dict[str, str] = {}

        def running() -> bool:
            service = self.find()
            if service is None:
                return False
            version = service.attrs["Version"]["Index"]
            for task in service.tasks(filters={"desired-state": "running"}):
                spec_version = (task.get("SpecVersion") or {}).get("Index", version)
                if task["Status"]["State"] == "running" and spec_version == version:
                    got["id"] = task["Status"]["ContainerStatus"]["ContainerID"]
                    return True
            return False

        Readiness(f"the backup repository's service {self.name} to run on the manager", running, timeout,
                  interval=0.5).wait()
        return got["id"]
