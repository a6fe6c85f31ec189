"""Docker: initialise one PostgreSQL volume per image and cluster, and clone it for every node.

The images' entrypoints initialise an empty data directory (initdb, the superuser, init scripts) and
skip that when it is already populated, so a node whose volume starts as a copy of an initialised one
starts at once, within the images' contract. The template is made by running the image's entrypoint
with `postgres -C data_directory`: it initialises, then runs that one-shot command and exits (-C is not
among the options for which the official entrypoint skips initialisation). Each node's database is then
created by `up`'s database step. The template volume belongs to its cluster and carries the cluster's
own secret, so nothing is shared between clusters; `down --volumes` removes it with the others.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from streamctl.backends import docker_spec as spec
from streamctl.backends.docker_errors import docker_errors
from streamctl.errors import BackendError

LABEL_TEMPLATE = f"{spec.LABEL_PREFIX}.template"
_READY = ".streamctl-template-ready"  # written last: a template without it is incomplete


class VolumeTemplates:
    """Per cluster: the initialised template volume of each PostgreSQL image, made once, cloned per node."""

    def __init__(self, api: Any, cluster: str, report: Callable[[str, str], None]) -> None:
        self.api = api
        self.cluster = cluster
        self.report = report
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._ready: set[str] = set()

    def key(self, s: spec.ContainerSpec) -> str:
        env = s.environment
        parts = [s.image, env.get("POSTGRES_USER", ""), env.get("POSTGRES_PASSWORD", ""),
                 env.get("POSTGRES_INITDB_ARGS", ""), env.get("PGDATA", ""), s.mount]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]

    def volume(self, s: spec.ContainerSpec) -> str:
        return f"{self.cluster}-pgtemplate-{self.key(s)}"

    def populate(self, s: spec.ContainerSpec) -> None:
        """Fill the node's (new, empty) volume with a copy of the initialised template for its image."""
        template = self.volume(s)
        with self._guard:
            lock = self._locks.setdefault(template, threading.Lock())
        copy = f"cp -a /from/. /to/ && rm -f /to/{_READY}"
        binds = {template: "/from", s.volume: "/to"}
        for attempt in (1, 2):
            with lock:
                if template not in self._ready:
                    if not self._has_ready(s, template):
                        self.report(s.node, "initialising the PostgreSQL template volume")
                        self._initialise(s, template)
                        # the first copy also seals the template (one container fewer on the way)
                        self._run(s, f"seal {template} and clone it into {s.volume}", binds,
                                  ["sh", "-c", f"touch /from/{_READY} && {copy}"])
                        self._ready.add(template)
                        return
                    self._ready.add(template)
            try:
                self._run(s, f"clone {template} into {s.volume}", binds,
                          ["sh", "-c", f"test -e /from/{_READY} && {copy}"])
                return
            except BackendError:
                if attempt == 2:
                    raise
                with lock:  # the template went away meanwhile (removed by hand): make it again, once
                    self._ready.discard(template)

    # -- internals ----------------------------------------------------------------------------------
    def _has_ready(self, s: spec.ContainerSpec, template: str) -> bool:
        with docker_errors(f"inspect volume {template}"):
            found = self.api.volumes(filters={"name": template}).get("Volumes") or []
        if not any(v["Name"] == template for v in found):
            return False
        try:
            self._run(s, f"check {template}", {template: "/from"}, ["test", "-e", f"/from/{_READY}"])
            return True
        except BackendError:
            return False

    def _initialise(self, s: spec.ContainerSpec, template: str) -> None:
        with docker_errors(f"remove incomplete volume {template}"):
            if any(v["Name"] == template for v in self.api.volumes(filters={"name": template}).get("Volumes") or []):
                self.api.remove_volume(template, force=True)
        labels = {spec.LABEL_CLUSTER: self.cluster, LABEL_TEMPLATE: s.image}
        with docker_errors(f"create volume {template}"):
            self.api.create_volume(template, labels=labels)
        env = {**s.environment, "POSTGRES_DB": "postgres"}  # each node's database comes from `up`'s step
        self._run(s, f"initialise {template}", {template: s.mount}, ["postgres", "-C", "data_directory"],
                  environment=env, plain=False)

    def _run(self, s: spec.ContainerSpec, what: str, binds: dict[str, str], command: list[str],
             environment: dict[str, str] | None = None, plain: bool = True) -> None:
        """A one-shot container of the node's image with `binds` (volume -> path); raises unless exit 0.
        plain: file work as root, bypassing the image's entrypoint; else through the entrypoint."""
        host_config = self.api.create_host_config(binds={v: {"bind": p, "mode": "rw"} for v, p in binds.items()})
        kwargs: dict[str, Any] = {"command": command, "environment": environment or {}, "host_config": host_config,
                                  "labels": {LABEL_TEMPLATE: self.cluster}}
        if plain:
            kwargs.update(entrypoint=["/usr/bin/env"], user="0")
        with docker_errors(what):
            created = self.api.create_container(s.image, **kwargs)
        cid = created["Id"]
        try:
            with docker_errors(what):
                self.api.start(cid)
                status = self.api.wait(cid, timeout=300).get("StatusCode", 1)
                if status != 0:
                    tail = self.api.logs(cid, tail=15).decode(errors="replace").splitlines()
                    raise BackendError(f"{what} failed (exit {status})", details=tail)
        finally:
            with docker_errors(f"remove helper container of {what}"):
                self.api.remove_container(cid, force=True)
