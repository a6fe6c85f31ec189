"""Redis's snapshot in a backup set on Swarm. Redis's task may run on any host, and the engine talked to is
the manager's, so no exec reaches its container: a one-shot service pinned to the task's host, with Redis's
volume mounted, prints the RDB (base64, between a header with its size and SHA-256 and an end line) and
the output is read through the manager. The set's copy goes into the repository directory on the manager
(`<repository>/streamctl/<cluster>/<set>/redis.rdb`, as on the other backends), written and read in the
repository's task. A restore writes it into the new Redis's volume by a one-shot service pinned to the host
that will run the node (recorded as its pin, as for the PostgreSQL nodes), the bytes in Docker secrets
(base64, in parts under Docker's 500 KB limit), removed afterwards."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import shlex
from typing import TYPE_CHECKING, Any

from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import put_files
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.restore import RestoreTask
from streamctl.backup.docker import exec_in
from streamctl.config.model import Engine
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.backends.swarm.backend import SwarmBackend
    from streamctl.backup.swarm import SwarmPlace
    from streamctl.config.model import Node

PG_USER = spec.SERVER_USER[Engine.POSTGRES]  # owns the repository directory
REDIS_USER = spec.SERVER_USER[Engine.REDIS]
BEGIN, END = "streamctl-rdb: begin", "streamctl-rdb: end"
PART = 360_000  # base64 characters per secret (Docker refuses a secret over 500 KB)
PARTS_DIR = "/run/streamctl-redis"


def _error(text: str, hint: str | None = None) -> Exception:
    from streamctl.backup.pgbackrest import BackupError

    return BackupError(text, hint=hint)


def _tail(task: RestoreTask) -> str:
    return " | ".join(task.logs().strip().splitlines()[-5:])


def _task_host(backend: SwarmBackend, node: Node) -> str:
    """The host of the node's running task (else its pin)."""
    service = backend._find(node)
    if service is not None:
        with docker_errors(f"list the tasks of {service.name}"):
            running = [t for t in service.tasks() if t["Status"]["State"] == "running"]
        if running:
            return str(running[0]["NodeID"])
    pin = backend.hosts.pin(node.name)
    if pin is None:
        raise _error(f"{node.name}: no running task to read its snapshot from", hint="streamctl up")
    return pin.id


def _decode(text: str) -> bytes | None:
    """The file between the markers, once the whole output is there and matches its size and digest."""
    lines = text.splitlines()
    head = next((i for i, line in enumerate(lines) if line.startswith(BEGIN)), None)
    if head is None or END not in lines[head:]:
        return None
    size, digest = lines[head].split()[-2:]
    data = base64.b64decode("".join(lines[head + 1:lines.index(END, head)]))
    if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
        return None
    return data


def read_from_task(backend: SwarmBackend, node: Node, path: str, timeout: float = 300.0) -> bytes:
    """`path` (in Redis's volume) as Redis's task sees it, read by a one-shot task on the same host."""
    task = RestoreTask(backend, node, _task_host(backend, node), "", [], suffix="snapshot")
    q = shlex.quote(path)
    script = (f"test -f {q} || {{ echo 'no file {path}' >&2; exit 3; }}; "
              f"echo \"{BEGIN} $(wc -c < {q}) $(sha256sum < {q} | cut -c1-64)\"; base64 {q}; echo '{END}'")
    got: dict[str, bytes] = {}
    try:
        task.run(script)
        code = task.exit_code(timeout)
        if code:
            raise _error(f"{node.name}: reading its snapshot on its host failed (exit {code}): {_tail(task)}")

        def complete() -> bool:  # the output of an ended task may reach the manager a moment later
            data = _decode(task.logs())
            if data is not None:
                got["data"] = data
            return data is not None

        Readiness(f"{node.name}'s snapshot through the manager", complete, 60.0, interval=0.5).wait()
    finally:
        task.remove()
    return got["data"]


def write_into_volume(backend: SwarmBackend, node: Node, files: dict[str, bytes], timeout: float = 300.0) -> None:
    """`files` (paths relative to the data mount) into the new node's volume, made on the host that will run
    it; a volume that holds any of them already is refused (a restore never writes over data)."""
    pin = backend.hosts.pin(node.name) or backend.hosts.place(node)
    cluster = backend.topology.cluster
    mount = spec.DATA_MOUNT[node.engine]
    secrets: list[sspec.SecretFile] = []
    checks, writes = [], []
    for i, (name, content) in enumerate(sorted(files.items())):
        text = base64.b64encode(content).decode()
        parts = [text[o:o + PART] for o in range(0, len(text), PART)]
        targets = [f"{PARTS_DIR}/{i}-{j}" for j in range(len(parts))]
        secrets += [sspec.SecretFile(sspec.secret_name(cluster, f"redis-part-{i}-{j}", part), target, part, None, 0o400)
                    for j, (part, target) in enumerate(zip(parts, targets, strict=True))]
        path = shlex.quote(posixpath.join(mount, name))
        source = f"cat {shlex.join(targets)} | base64 -d" if targets else "true"
        checks.append(f"test ! -e {path} || {{ echo '{node.name}: {name} exists in its volume; a restore never "
                     f"writes over data' >&2; exit 3; }}")
        writes.append(f"install -d -o {REDIS_USER} -g {REDIS_USER} -m 0700 $(dirname {path}) && {source} > {path}"
                     f" && chown {REDIS_USER}:{REDIS_USER} {path} && chmod 0600 {path}")
    task = RestoreTask(backend, node, pin.id, "", secrets, suffix="restore")
    try:
        task.run("set -e; " + "; ".join([*checks, *writes, "sync"]))
        code = task.exit_code(timeout)
        if code:
            raise _error(f"{node.name}: writing the set's snapshot into its volume failed (exit {code}): "
                         f"{_tail(task)}")
    finally:
        task.remove()
        _remove_secrets(backend, [s.name for s in secrets])


def _remove_secrets(backend: SwarmBackend, names: list[str]) -> None:
    for name in names:
        with docker_errors(f"remove secret {name}"):
            for found in backend.client.secrets.list(filters={"name": name}):
                if found.name == name:
                    found.remove()


class RepositorySnapshots:
    """The sets' snapshots in the repository directory on the manager, through the repository's task."""

    def __init__(self, place: SwarmPlace) -> None:
        self.place = place
        self.base = f"{spec.BACKUP_REPO}/streamctl/{place.ctx.topology.cluster}"

    @property
    def api(self) -> Any:
        return self.place.api

    def _exec(self, argv: list[str]) -> str:
        code, out, err = exec_in(self.api, self.place._repository(), argv)
        if code:
            raise _error(f"the backup repository's task: {' '.join(argv[:2])} failed: {(err or out).strip()}")
        return out

    def labels(self) -> set[str]:
        out = self._exec(["sh", "-c", 'cd "$1" 2>/dev/null || exit 0; for d in *; do '
                                      'if [ -f "$d/redis.rdb" ]; then echo "$d"; fi; done', "sh", self.base])
        return set(out.split())

    def save(self, label: str, data: bytes) -> None:
        directory = f"{self.base}/{label}"
        container = self.place._repository()
        self._exec(["mkdir", "-p", "-m", "0700", directory])
        put_files(self.api, container, self.place._image(), container[:12],
                  [spec.ContainerFile(f"{directory}/redis.rdb.part", data, 0o600, PG_USER)], dir_mode=0o700)
        self._exec(["mv", f"{directory}/redis.rdb.part", f"{directory}/redis.rdb"])

    def load(self, label: str) -> bytes | None:
        import io
        import tarfile

        from docker.errors import NotFound

        path = f"{self.base}/{label}/redis.rdb"
        with docker_errors(f"read {path} in the backup repository's task"):
            try:
                stream, _ = self.api.get_archive(self.place._repository(), path)
                raw = b"".join(stream)
            except NotFound:
                return None
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read() if member else None
