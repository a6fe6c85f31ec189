"""The uid/gid of an image's server user, which a Swarm secret holding a private key must be owned by.

Swarm mounts a secret with the uid, gid and mode its reference gives; PostgreSQL and Redis read their key
only as their own user, and PostgreSQL refuses a key others can read. The ids come from the image's own
/etc/passwd (a created, never started, container on the manager), as the Docker backend's files do.
"""

from __future__ import annotations

import threading
from typing import Any

from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import image_users
from streamctl.errors import BackendError

# The official images' server users (postgres, redis, mongo all create theirs as 999:999): used only when
# the image is not on the manager (its task runs on another host, which pulls it there).
OFFICIAL_IDS = (999, 999)


class ImageUsers:
    """user name -> (uid, gid) per image, looked up once per image and cached."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._cache: dict[str, dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def ids(self, image: str, user: str) -> tuple[int, int]:
        with self._lock:
            if image not in self._cache:
                self._cache[image] = self._read(image)
        found = self._cache[image]
        if not found:
            return OFFICIAL_IDS
        if user not in found:
            raise BackendError(f"the image {image} has no user {user!r} to own its TLS key",
                               hint="use an image built on the official one for this engine")
        return found[user]

    def _read(self, image: str) -> dict[str, tuple[int, int]]:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(image)
        except ImageNotFound:
            return {}
        with docker_errors(f"read the users of {image}"):
            container = self.client.containers.create(image, command=["true"], entrypoint=[])
        try:
            return image_users(self.client.api, container.id, image)
        finally:
            with docker_errors(f"remove the temporary container of {image}"):
                container.remove(force=True)
