"""Images for the Docker backend: use the local copy, else pull it once, reporting progress."""

from __future__ import annotations

import threading
import time
from typing import Any

from streamctl.backends.docker.errors import short_error
from streamctl.errors import BackendError
from streamctl.events import Progress

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(image: str) -> threading.Lock:
    """One lock per image: nodes sharing an image pull it once, the others wait for it."""
    with _locks_guard:
        return _locks.setdefault(image, threading.Lock())


def split_reference(image: str) -> tuple[str, str]:
    """`repo[:tag][@digest]` -> (repo, tag or digest); a registry port is not mistaken for a tag."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


class ImagePuller:
    """Ensures an image is present; pull progress goes to a callback as per-layer counts, not bytes."""

    def __init__(self, client: Any, progress: Progress | None = None) -> None:
        self.client = client
        self.progress: Progress = progress or (lambda _node, _msg: None)
        self._failed: dict[str, BackendError] = {}  # one failed pull per image and run, not one per node

    def present(self, image: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.api.inspect_image(image)
            return True
        except ImageNotFound:
            return False

    def ensure(self, node: str, image: str) -> None:
        with _lock_for(image):
            if image in self._failed:
                raise self._failed[image]
            if self.present(image):
                return
            try:
                self._pull(node, image)
            except BackendError as exc:
                self._failed[image] = exc
                raise

    def _pull(self, node: str, image: str) -> None:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        repo, tag = split_reference(image)
        started = time.monotonic()
        self.progress(node, f"pulling image {image}")
        layers: set[str] = set()
        done: set[str] = set()
        try:
            for event in self.client.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise BackendError(f"cannot pull image {image}: {event['error']}", hint=_PULL_HINT)
                status, layer = event.get("status", ""), event.get("id")
                if layer and status in ("Pulling fs layer", "Waiting", "Already exists"):
                    layers.add(layer)
                if layer and status in ("Pull complete", "Already exists"):
                    done.add(layer)
                    self.progress(node, f"pulling image {image}: {len(done)}/{len(layers)} layers")
        except (DockerException, RequestException) as exc:
            raise BackendError(f"cannot pull image {image}: {short_error(exc)}", hint=_PULL_HINT) from exc
        if not self.present(image):
            raise BackendError(f"cannot pull image {image}: the engine reported no error but has no such "
                               "image", hint=_PULL_HINT)
        self.progress(node, f"pulled image {image} ({time.monotonic() - started:.1f}s)")


_PULL_HINT = ("check the image name in the topology and that this machine can reach its registry; or load "
              "the image yourself (docker load / docker build) and run `streamctl up` again")
