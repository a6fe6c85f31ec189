"""Files (secrets, certificates) copied into a created container before it starts: never env or argv."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.spec import FILES_DIR, ContainerFile
from streamctl.errors import BackendError


def image_users(api: Any, container_id: str, name: str) -> dict[str, tuple[int, int]]:
    """user name -> (uid, gid), from the image's own /etc/passwd (read from the created container)."""
    with docker_errors(f"read /etc/passwd of {name}"):
        stream, _ = api.get_archive(container_id, "/etc/passwd")
        raw = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        passwd = member.read().decode() if member else ""
    fields = (line.split(":") for line in passwd.splitlines())
    return {f[0]: (int(f[2]), int(f[3])) for f in fields if len(f) > 3}


def put_file(api: Any, container_id: str, directory: str, name: str, text: str, what: str) -> None:
    """One file (root's, mode 0644) into `directory` of a created container; only the file, so the
    directory's own owner and mode stay as the image made them. `what` names the write in errors."""
    data = text.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    with docker_errors(what):
        if not api.put_archive(container_id, directory, buf.getvalue()):
            raise BackendError(f"could not {what}")


class UserIds:
    """user name -> (uid, gid) of each image, read from the first created container of that image and kept:
    every read mounts the container's filesystem in the engine, which costs as much as the copy itself."""

    def __init__(self) -> None:
        self._found: dict[str, dict[str, tuple[int, int]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, api: Any, container_id: str, image: str, name: str) -> dict[str, tuple[int, int]]:
        with self._guard:
            lock = self._locks.setdefault(image, threading.Lock())
        with lock:  # one read per image; the other nodes' threads wait for it
            if image not in self._found:
                self._found[image] = image_users(api, container_id, name)
            return self._found[image]


def put_files(api: Any, container_id: str, image: str, name: str, files: Sequence[ContainerFile],
              users: UserIds | None = None, dir_mode: int = 0o755) -> None:
    """Copy `files` into the (created, not yet started) container, each owned by its user with its mode.
    users: the ids already read for this image (else read from this container). The files' directories are
    made (or, existing, set) with `dir_mode`: the archive's entry for a directory sets its mode either way."""
    if not files:
        return
    ids = (users or UserIds()).of(api, container_id, image, name)
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in sorted({str(PurePosixPath(f.path).parent) for f in files}):
            owner = next(f.owner for f in files if str(PurePosixPath(f.path).parent) == d)
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, dir_mode, now
            info.uid, info.gid = ids.get(owner, (0, 0)) if d != FILES_DIR else (0, 0)
            tar.addfile(info)
        for f in files:
            if f.owner not in ids:
                raise BackendError(f"the image {image} has no user {f.owner!r} to own {f.path}")
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.size, info.mode, info.mtime = len(f.content), f.mode, now
            info.uid, info.gid = ids[f.owner]
            tar.addfile(info, io.BytesIO(f.content))
    with docker_errors(f"copy files into {name}"):
        if not api.put_archive(container_id, "/", buf.getvalue()):
            raise BackendError(f"could not copy files into {name}")
