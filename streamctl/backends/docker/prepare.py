"""Before `up` changes any container: every image present (pulled, with progress), and no PostgreSQL
node's data handed to a server of another major version (which would refuse to start on it)."""

from __future__ import annotations

import io
import re
import tarfile
from typing import Any

from streamctl.backends.base import Action
from streamctl.backends.docker import spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.images import ImagePuller
from streamctl.config.model import Engine, Node, Topology
from streamctl.errors import BackendError, RefusedError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


def ensure_images(puller: ImagePuller, changes: list[tuple[Node, Action]]) -> None:
    """Pull every missing image first; one that cannot be had stops `up` before any node changes."""
    first_node: dict[str, str] = {}
    for node, action in changes:
        if action in (Action.CREATE, Action.RECREATE):
            first_node.setdefault(node.image, node.name)
    errors: list[BackendError] = []
    for image, node_name in first_node.items():
        try:
            puller.ensure(node_name, image)
        except BackendError as exc:
            errors.append(exc)
    if errors:
        first = errors[0]
        first.details = [*first.details, *(f"also: {e.message}" for e in errors[1:]),
                         "no node was created or changed"]
        raise first


def image_major(client: Any, image: str) -> str | None:
    """The image's PostgreSQL major version: PG_MAJOR in its environment (as the official images declare
    it), else what its `postgres --version` says; None when it has no PostgreSQL."""
    with docker_errors(f"inspect image {image}"):
        env = client.api.inspect_image(image).get("Config", {}).get("Env") or []
    for item in env:
        if item.startswith("PG_MAJOR="):
            return item.split("=", 1)[1].split(".")[0]
    try:
        out = client.containers.run(image, entrypoint=["postgres", "--version"], remove=True,
                                    network_disabled=True, stdout=True, stderr=True)
    except Exception:  # noqa: BLE001 - an image without a postgres binary has no version to compare
        return None
    match = _VERSION.search(out.decode(errors="replace"))
    return match.group(1) if match else None


def data_major(client: Any, container: Any | None, volume: str, image: str) -> str | None:
    """PG_VERSION of the node's data: read from its container (even stopped), else from the volume with a
    short read-only helper container; None when the volume holds no PostgreSQL data yet."""
    from docker.errors import NotFound

    path = f"{spec.PGDATA}/PG_VERSION"
    if container is not None:
        try:
            stream, _ = container.get_archive(path)
        except NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            fh = tar.extractfile(member) if member else None
            return fh.read().decode().strip() if fh else None
    try:
        client.volumes.get(volume)
    except NotFound:
        return None
    mount = "/streamctl-volume"
    sub = spec.PGDATA.removeprefix(spec.DATA_MOUNT[Engine.POSTGRES]).lstrip("/")
    try:
        out = client.containers.run(image, entrypoint=["cat", f"{mount}/{sub}/PG_VERSION"], remove=True,
                                    network_disabled=True, volumes={volume: {"bind": mount, "mode": "ro"}})
    except Exception:  # noqa: BLE001 - no PG_VERSION (empty volume) makes cat fail: nothing to protect
        return None
    return out.decode().strip() or None


def check_major_versions(client: Any, topology: Topology, changes: list[tuple[Node, Action]],
                         find: Any) -> None:
    """Refuse, before any container is touched, a PostgreSQL node whose data is of another major version
    than its (new) image."""
    refused: list[str] = []
    for node, action in changes:
        if not node.is_postgres or action not in (Action.CREATE, Action.RECREATE):
            continue
        volume = spec.volume_name(topology.cluster, node.name)
        have = data_major(client, find(node), volume, node.image)
        if have is None:
            continue
        want = image_major(client, node.image)
        if want is not None and want != have:
            refused.append(f"{node.name}: its data (volume {volume}) is PostgreSQL {have}, the image "
                           f"{node.image} is PostgreSQL {want}")
    if refused:
        raise RefusedError(
            f"refused to change {len(refused)} node(s) to another PostgreSQL major version: a server does "
            "not start on another major version's data", details=[*refused, "no container was changed"],
            hint="keep the old image; to move the data: dump and restore (pg_dumpall into a new node of the "
                 "new version), or pg_upgrade with both versions' binaries")
