"""Docker: initialise one PostgreSQL volume per image and cluster, and clone it for every node.

The images' entrypoints initialise an empty data directory (initdb, the superuser, init scripts) and
skip that when it is already populated, so a node whose volume starts as a copy of an initialised one
starts at once, within the images' contract. The template is made by running the image's entrypoint
with `postgres -C data_directory`: it initialises, then runs that one-shot command and exits (-C is not
among the options for which the official entrypoint skips initialisation). Its POSTGRES_DB is a spare
database that `up`'s database step renames to each node's own when the image's init scripts left it
empty, else creates the node's database beside it. The template volume belongs to its cluster and
carries the cluster's own secret, so nothing is shared between clusters; `down --volumes` removes it with
the others.

A marker file, written last, says the template is complete; it holds a random token so that a copy
made straight on the host (docker_volume_copy) is sure to read the very volume the engine means.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from streamctl.backends import disk
from streamctl.backends.docker import spec
from streamctl.backends.docker import volume_copy as host
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import UserIds, put_file, put_files
from streamctl.errors import BackendError, StreamctlError
from streamctl.names import SPARE_DATABASE

LABEL_TEMPLATE = f"{spec.LABEL_PREFIX}.template"
_READY = ".streamctl-template-ready"  # written last: a template without it is incomplete


class VolumeTemplates:
    """Per cluster: the initialised template volume of each PostgreSQL image, made once, cloned per node."""

    def __init__(self, api: Any, cluster: str, report: Callable[[str, str], None],
                 users: UserIds | None = None, labels: dict[str, str] | None = None) -> None:
        self.api = api
        self.cluster = cluster
        self.labels = labels or {}  # this state directory's instance (ownership.py)
        self.report = report
        self.users = users or UserIds()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._tokens: dict[str, str] = {}  # template volume -> the token of its marker
        self._started: set[str] = set()
        self._failed: dict[str, StreamctlError] = {}  # what a background initialisation ran into
        self._launched: dict[str, threading.Event] = {}  # set once its container runs (or it needs none)
        # One copy at a time: a copy is bound by file creation in the kernel, so copies side by side only
        # share it, while one after another lets the first node start as the next one is copied.
        self._copying = threading.Lock()

    def start(self, s: spec.ContainerSpec) -> None:
        """Begin making s's template in a background thread (once), so that the node's own container is
        created meanwhile; `populate` waits for it. Not a daemon: the interpreter waits for its helper."""
        template = self.volume(s)
        with self._guard:
            if template in self._started or template in self._tokens:
                return
            self._started.add(template)
            self._launched[template] = threading.Event()
        threading.Thread(target=self._background, args=(s, template), name=f"template {template}").start()

    def wait_launched(self, timeout: float = 10.0) -> None:
        """Wait (a bounded while) until every template being made has its container running. The engine
        then mounts and starts it ahead of the nodes' own containers and files, which would otherwise
        take turns with it: the template is the longest path of a fresh cluster, the rest can wait."""
        with self._guard:
            pending = list(self._launched.values())
        for event in pending:
            event.wait(timeout)

    def _background(self, s: spec.ContainerSpec, template: str) -> None:
        try:
            self._ensure(s, template)
        except StreamctlError as exc:  # populate raises it in the node's thread
            with self._guard:
                self._failed[template] = exc
        finally:
            self._launched[template].set()

    def key(self, s: spec.ContainerSpec) -> str:
        env = s.environment
        parts = [s.image, env.get("POSTGRES_USER", ""), _password(s),
                 env.get("POSTGRES_INITDB_ARGS", ""), env.get("PGDATA", ""), s.mount]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]

    def volume(self, s: spec.ContainerSpec) -> str:
        return f"{self.cluster}-pgtemplate-{self.key(s)}"

    def populate(self, s: spec.ContainerSpec) -> None:
        """Fill the node's (new, empty) volume with a copy of the initialised template for its image."""
        template = self.volume(s)
        for attempt in (1, 2):
            token = self._ensure(s, template)
            if self._host_copy(template, s.volume, token):
                return
            try:
                if not self._volume_exists(template):  # else creating the helper would create it, empty
                    raise BackendError(f"the template volume {template} is gone")
                copy = f"test -e /from/{_READY} && cp -a /from/. /to/ && rm -f /to/{_READY}"
                self._run(s, f"clone {template} into {s.volume}", {template: "/from", s.volume: "/to"},
                          ["sh", "-c", copy])
                return
            except BackendError:
                if attempt == 2:
                    raise
                with self._guard:  # the template went away meanwhile (removed by hand): make it again, once
                    if self._tokens.get(template) == token:  # unless another node's thread did already
                        del self._tokens[template]

    # -- internals ----------------------------------------------------------------------------------
    def _ensure(self, s: spec.ContainerSpec, template: str) -> str:
        """The template's marker token, initialising the template first when it is missing or incomplete."""
        with self._guard:
            lock = self._locks.setdefault(template, threading.Lock())
        with lock:
            with self._guard:
                failed = self._failed.pop(template, None)
            if failed is not None:
                raise failed
            token = self._tokens.get(template) or self._marker(s, template)
            if token is None:
                self.report(s.node, "initialising the PostgreSQL template volume")
                token = self._initialise(s, template)
            self._tokens[template] = token
            return token

    def _volume_exists(self, name: str) -> bool:
        with docker_errors(f"inspect volume {name}"):
            found = self.api.volumes(filters={"name": name}).get("Volumes") or []
        return any(v["Name"] == name for v in found)

    def _marker(self, s: spec.ContainerSpec, template: str) -> str | None:
        """The token of a complete template made earlier, read through a container that never starts."""
        from docker.errors import NotFound

        if not self._volume_exists(template):
            return None
        cid = self._helper(s, f"check {template}", {template: "/from"}, ["true"])
        try:
            stream, _ = self.api.get_archive(cid, f"/from/{_READY}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.next()
                fh = tar.extractfile(member) if member else None
                return (fh.read().decode().strip() if fh else "") or "-"
        except NotFound:
            return None
        finally:
            self._remove(cid, f"check {template}")

    def _initialise(self, s: spec.ContainerSpec, template: str) -> str:
        with docker_errors(f"remove incomplete volume {template}"):
            if self._volume_exists(template):
                self.api.remove_volume(template, force=True)
        labels = {spec.LABEL_CLUSTER: self.cluster, LABEL_TEMPLATE: s.image, **self.labels}
        with docker_errors(f"create volume {template}"):
            self.api.create_volume(template, labels=labels)
        # The entrypoint makes a spare database (POSTGRES_DB) that `up`'s database step renames to the node's
        # own, unless the image's init scripts put something in it (services/postgres.py: spare_is_empty).
        env = {**s.environment, "POSTGRES_DB": SPARE_DATABASE}
        # When the volume's directory is reachable here, initdb skips its file-by-file fsync and the whole
        # volume is flushed at once before the marker says "complete" (a crash before that leaves no marker).
        where = host.local_mountpoint(self.api, template)
        if where is not None:
            env["POSTGRES_INITDB_ARGS"] = f"{env.get('POSTGRES_INITDB_ARGS', '')} --no-sync".strip()
        # The password travels as the node's own file (POSTGRES_PASSWORD_FILE), never in the environment.
        files = [f for f in s.files if f.path == env.get("POSTGRES_PASSWORD_FILE")]
        token = secrets.token_hex(16)

        def seal(cid: str) -> None:  # once the entrypoint has exited 0, into the stopped container's volume
            if where is not None:
                disk.flush(where)
            self._put_marker(cid, s.mount, token, template)

        self._run(s, f"initialise {template}", {template: s.mount}, ["postgres", "-C", "data_directory"],
                  environment=env, plain=False, files=files, then=seal, started=self._launched_now(template))
        return token

    def _launched_now(self, template: str) -> Callable[[], None]:
        with self._guard:
            event = self._launched.get(template)
        return event.set if event is not None else (lambda: None)

    def _put_marker(self, cid: str, mount: str, token: str, template: str) -> None:
        put_file(self.api, cid, mount, _READY, f"{token}\n", f"mark {template} complete")

    def _host_copy(self, template: str, volume: str, token: str) -> bool:
        """Clone straight on the host when the engine's volumes are reachable here; False: use a helper."""
        try:
            src, dst = host.local_mountpoint(self.api, template), host.local_mountpoint(self.api, volume)
            if src is None or dst is None or any(dst.iterdir()):
                return False
            if (src / _READY).read_text().strip() != token:  # not the volume the engine means
                return False
        except Exception:  # noqa: BLE001 - unreadable here or an engine error: take the helper container
            return False
        try:
            with self._copying:
                host.copy_tree(src, dst, skip=_READY)
            return True
        except OSError:
            with suppress(OSError):  # else the helper's `cp -a` overwrites what is left
                host.empty(dst)
            return False

    def _helper(self, s: spec.ContainerSpec, what: str, binds: dict[str, str], command: list[str],
                environment: dict[str, str] | None = None, plain: bool = True) -> str:
        """Create (not start) a one-shot container of the node's image, with no network, mounting `binds`.
        plain: file work as root, bypassing the image's entrypoint; else through the entrypoint."""
        host_config = self.api.create_host_config(
            binds={v: {"bind": p, "mode": "rw"} for v, p in binds.items()}, network_mode="none")
        kwargs: dict[str, Any] = {"command": command, "environment": environment or {}, "host_config": host_config,
                                  "labels": {LABEL_TEMPLATE: self.cluster}}
        if plain:
            kwargs.update(entrypoint=["/usr/bin/env"], user="0")
        with docker_errors(what):
            return str(self.api.create_container(s.image, **kwargs)["Id"])

    def _run(self, s: spec.ContainerSpec, what: str, binds: dict[str, str], command: list[str],
             environment: dict[str, str] | None = None, plain: bool = True,
             files: list[spec.ContainerFile] | None = None, then: Callable[[str], None] | None = None,
             started: Callable[[], None] | None = None) -> None:
        """Run a helper container to its end; raises unless it exits 0; `then(id)` before it is removed;
        `started()` once it runs."""
        cid = self._helper(s, what, binds, command, environment, plain)
        try:
            put_files(self.api, cid, s.image, what, files or [], self.users)
            with docker_errors(what):
                self.api.start(cid)
                if started is not None:
                    started()
                status = self.api.wait(cid, timeout=300).get("StatusCode", 1)
                if status != 0:
                    tail = self.api.logs(cid, tail=15).decode(errors="replace").splitlines()
                    raise BackendError(f"{what} failed (exit {status})", details=tail)
            if then is not None:
                then(cid)
        finally:
            self._remove(cid, what)

    def _remove(self, cid: str, what: str) -> None:
        with docker_errors(f"remove helper container of {what}"):
            self.api.remove_container(cid, force=True)


def _password(s: spec.ContainerSpec) -> str:
    """The superuser password the template is initialised with: the node's password file, or its env."""
    path = s.environment.get("POSTGRES_PASSWORD_FILE")
    for f in s.files:
        if f.path == path:
            return f.content.decode()
    return s.environment.get("POSTGRES_PASSWORD", "")
