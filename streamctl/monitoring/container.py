"""The monitoring node on the Docker backend: Prometheus in a container of monitoring.image (the official
prom/prometheus by default), with the same prometheus.yml and user-editable alerts.yml as on the local
backend (written in the state directory, copied into the container's /etc/prometheus), its data in a named
volume at /prometheus.

The container shares the host's network namespace and listens on monitoring.bind:port (127.0.0.1 by
default): the gateway is a host process on loopback, and host networking is the one way a container reaches
it without the gateway listening beyond loopback. The container carries the cluster's and the instance's
labels, so `down --volumes` and the ownership guard treat it like the nodes' containers.
"""

from __future__ import annotations

import io
import tarfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from streamctl.backends.base import fingerprint
from streamctl.backends.docker import owner, spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import put_files
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.monitoring.prometheus import NODE, PrometheusServer
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR
from streamctl.readiness import Readiness

CONFIG_DIR = "/etc/prometheus"  # the official image's layout
DATA_DIR = "/prometheus"
USER = "nobody"  # the official image runs as nobody (65534)


class PrometheusContainer(PrometheusServer):
    """One cluster's Prometheus container: its files, whether it runs, and how to start, reload and stop it."""

    def __init__(self, ctx: ClusterContext, client: Any) -> None:
        super().__init__(ctx)
        self.client = client
        self.name = spec.container_name(ctx.topology.cluster, NODE)
        self.volume = spec.volume_name(ctx.topology.cluster, NODE)

    @property
    def rules_ref(self) -> str:
        return f"{CONFIG_DIR}/alerts.yml"

    @property
    def token_ref(self) -> str:
        return f"{CONFIG_DIR}/gateway-token"

    @property
    def ca_ref(self) -> str:
        return f"{CONFIG_DIR}/ca.pem"

    def binary(self) -> str:
        return self.spec.image  # the image is pulled (or found) when the container is created

    # -- definition -------------------------------------------------------------------------------
    def argv(self) -> list[str]:
        return [f"--config.file={CONFIG_DIR}/prometheus.yml", f"--storage.tsdb.path={DATA_DIR}",
                f"--web.listen-address={self.bind}:{self.spec.port}", "--storage.tsdb.retention.time=15d"]

    def labels(self) -> dict[str, str]:
        return {spec.LABEL_CLUSTER: self.ctx.topology.cluster, spec.LABEL_NODE: NODE, spec.LABEL_ROLE: "monitoring",
                **self.ctx.ownership.labels()}

    def fingerprint(self) -> str:
        return fingerprint({"image": self.spec.image, "command": self.argv(), "network": "host",
                            "volume": self.volume})

    def files(self) -> dict[str, tuple[bytes, int]]:
        """name in /etc/prometheus -> (content, mode): the configuration, the rules, and what the scrape needs
        (the gateway's token beyond loopback, 0600; the CA with TLS). Read from the state directory."""
        text = self.config_text()
        out = {"prometheus.yml": (text.encode(), 0o644)}
        if self.rules_file.exists():
            out["alerts.yml"] = (self.rules_file.read_bytes(), 0o644)
        token = self.ctx.store.gateway_token_file
        if "credentials_file" in text and token.exists():
            out["gateway-token"] = (token.read_bytes(), 0o600)
        if "ca_file" in text:
            out["ca.pem"] = (Path(self.ctx.ca_path()).read_bytes(), 0o644)
        return out

    # -- observation ------------------------------------------------------------------------------
    def find(self) -> Any | None:
        """The container, or None; one of that name not made for this cluster, or another instance's, is
        refused (ForeignError from the ownership guard)."""
        return owner.find_named(self.client.containers.get, lambda c: c.labels, "container", self.name,
                                self.ctx.topology.cluster, NODE, self.ctx.ownership, "docker rm -f")

    def _current(self, container: Any) -> bool:
        """The container is this definition and ours (not one to take over)."""
        labels = container.labels or {}
        return (labels.get(spec.LABEL_FINGERPRINT) == self.fingerprint()
                and labels.get(LABEL_INSTANCE) == self.ctx.ownership.instance)

    def _copied(self, container: Any) -> dict[str, bytes]:
        """The files in the container's /etc/prometheus (read back through the engine)."""
        from docker.errors import NotFound

        with docker_errors(f"read {CONFIG_DIR} of {self.name}"):
            try:
                stream, _ = self.client.api.get_archive(container.id, CONFIG_DIR)
            except NotFound:
                return {}
            raw = b"".join(stream)
        out = {}
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    out[member.name.rsplit("/", 1)[-1]] = f.read()
        return out

    def _files_differ(self, container: Any) -> bool:
        copied = self._copied(container)
        return any(copied.get(name) != content for name, (content, _) in self.files().items())

    def pid(self) -> int | None:  # "running" for the shared code paths: the container's main process
        container = self.find()
        if container is None or container.status != "running":
            return None
        return int(container.attrs.get("State", {}).get("Pid") or 0) or None

    def pending(self) -> list[str]:
        out = [p for p in super().pending() if not p.startswith("start prometheus")]
        container = self.find()
        where = f"{self.bind}:{self.spec.port}"
        if container is None:
            out.append(f"create container {self.name} ({self.spec.image}) on {where}")
        elif not self._current(container):
            out.append(f"recreate container {self.name} ({self.spec.image}) on {where}")
        else:
            if self.rules_file.exists() and self._files_differ(container):
                out.append(f"copy the configuration into {self.name} and reload")
            if container.status != "running":
                out.append(f"start container {self.name}")
        return out

    # -- changes ----------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Write the files, create (or recreate) the container or copy what changed and reload it, and wait
        until Prometheus is ready."""
        self.write_files()
        container = self.find()
        if container is not None and not self._current(container):
            self._remove(container)
            container = None
        if container is None:
            self._create()
        else:
            differ = self._files_differ(container)
            if differ:
                self._put(container.id)
            if container.status != "running":
                with docker_errors(f"start {self.name}"):
                    container.start()
            elif differ:  # Prometheus reloads its configuration and rules on SIGHUP
                with docker_errors(f"reload {self.name}"):
                    container.kill(signal="SIGHUP")
        Readiness(f"prometheus in container {self.name} on {self.url}", self.ready, timeout=60, interval=0.1,
                  logs=self._logs, hint=f"see `docker logs {self.name}`",
                  alive=lambda: self.pid() is not None).wait()

    def _ensure_image(self) -> None:
        from docker.errors import ImageNotFound

        with docker_errors(f"pull {self.spec.image}"):
            try:
                self.client.images.get(self.spec.image)
            except ImageNotFound:
                try:
                    self.client.images.pull(self.spec.image)
                except Exception as exc:
                    raise BackendError(f"cannot pull {self.spec.image}: {exc}",
                                       hint="set monitoring.image to an image present locally") from exc

    def _create(self) -> None:
        self._ensure_image()
        api = self.client.api
        labels = self.labels()
        with docker_errors(f"create volume {self.volume}"):
            api.create_volume(self.volume, labels=labels)
        host_config = api.create_host_config(network_mode="host",
                                             binds={self.volume: {"bind": DATA_DIR, "mode": "rw"}})
        with docker_errors(f"create container {self.name}"):
            created = api.create_container(self.spec.image, command=self.argv(), name=self.name,
                                           labels={**labels, spec.LABEL_FINGERPRINT: self.fingerprint()},
                                           host_config=host_config, user="65534:65534")
        self._put(created["Id"])
        with docker_errors(f"start container {self.name}"):
            api.start(created["Id"])

    def _put(self, container_id: str) -> None:
        files = [spec.ContainerFile(f"{CONFIG_DIR}/{name}", content, mode, USER)
                 for name, (content, mode) in sorted(self.files().items())]
        put_files(self.client.api, container_id, self.spec.image, self.name, files)

    def _remove(self, container: Any) -> None:
        with docker_errors(f"remove container {self.name}"):
            container.remove(v=True, force=True)

    def _logs(self) -> list[str]:
        container = self.find()
        if container is None:
            return []
        with docker_errors(f"read the logs of {self.name}"):
            return container.logs(tail=20).decode(errors="replace").splitlines()

    def stop(self, volumes: bool = False) -> None:
        """`down`: stop the container; with volumes, remove it and its data volume too."""
        from docker.errors import NotFound

        container = self.find()
        if container is not None and container.status in ("running", "restarting", "paused"):
            with docker_errors(f"stop {self.name}"):
                container.stop(timeout=30)
        if not volumes:
            return
        if container is not None:
            self._remove(container)
        with docker_errors(f"remove volume {self.volume}"), suppress(NotFound):
            volume = self.client.volumes.get(self.volume)
            labels = volume.attrs.get("Labels") or {}
            # another state directory's volume raises; ours, or one `down` may take over, goes
            self.ctx.ownership.check(f"volume {self.volume}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR))
            volume.remove(force=True)
