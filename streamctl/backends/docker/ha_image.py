"""The HA member image: the topology's PostgreSQL/Citus image with Patroni 4 (and etcd) added, built once by
streamctl through the Docker SDK and tagged by a hash of its inputs, so it is reused until one changes.

The build needs no network (it runs with `network_mode=none`): what it adds is prepared on the host first,
once per machine, in a materials directory beside the PostgreSQL templates' cache:
- `wheels/`: Patroni and its dependencies as wheels for the host's Python (`pip wheel`), unpacked in the image
  into /opt/streamctl-patroni (no pip needed there);
- `debs/`: Debian's python3 with every package it depends on, and etcd-server (`apt-get download`); the build
  installs only those the image lacks, and takes etcd's binary alone out of its package.
So the base image must be Debian-based, of the same Python minor version as the host (bookworm: 3.11), which
the official postgres and citusdata/citus images and the test images are. `scripts/install --test` prepares the
materials; `up` does when they are missing (PyPI and the Debian mirror must then be reachable)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from streamctl.backends.docker.errors import docker_errors
from streamctl.errors import BackendError, PreflightError
from streamctl.ha.runtime import PATRONI

ENV = "STREAMCTL_HA_MATERIALS"  # overrides where the materials are
REPOSITORY = "streamctl/ha-member"
LABEL_BASE = "io.streamctl.ha-base"
SITE = "/opt/streamctl-patroni"  # Patroni's packages in the image (PYTHONPATH)
ENTRYPOINT = "/usr/local/bin/streamctl-ha-member"
_LOCK = threading.Lock()
_BUILT: dict[str, str] = {}  # base image id -> member image tag, for this process

# Runs as root: the volume's directories made the server user's, then Patroni (as PID 1 it reaps and forwards
# signals itself) as that user. Its configuration is a file streamctl copies in (0600), never the command line.
MEMBER_ENTRYPOINT = f"""#!/bin/sh
set -e
data=/var/lib/postgresql/data
mkdir -p "$data/run"
chown postgres:postgres "$data" "$data/run"
chmod 0700 "$data"
export PYTHONPATH={SITE} HOME=/var/lib/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups -- python3 -m patroni /etc/streamctl/patroni.yml
"""

# A Swarm member's service runs this instead of the entrypoint alone. Swarm may start a member's new task while
# the old one still runs (a host that comes back after it was unreachable: the old task resumes, the new one is
# scheduled beside it), and PostgreSQL's postmaster.pid stops no second server in another container on the same
# data directory. So the task holds a lock on its volume for as long as its Patroni (PID 1) lives; a new task
# waits for the old one to end.
SWARM_MEMBER_COMMAND = ["sh", "-c", "exec 9>>/var/lib/postgresql/data/.member.lock; flock -n 9 || { echo "
                        "'streamctl: another task of this member runs on its volume: waiting for it to end' >&2; "
                        f"flock 9; }}; exec {ENTRYPOINT}"]

_INSTALL = (
    # three passes: dpkg -i takes the packages in its own order, and a pre-dependency must be set up first
    "set -e; cd /tmp/streamctl-ha/debs; for pass in 1 2 3; do new=''; "
    "for f in *.deb; do p=$(dpkg-deb -f \"$f\" Package); [ \"$p\" != etcd-server ] || continue; "
    "dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null | grep -q 'install ok installed' || new=\"$new $f\"; done; "
    "if [ -n \"$new\" ]; then dpkg -i $new || [ $pass -lt 3 ]; fi; done; "
    "dpkg-deb -x etcd-server_*.deb /tmp/streamctl-ha/etcd; install -m 0755 /tmp/streamctl-ha/etcd/usr/bin/etcd "
    "/usr/local/bin/etcd; "
    "python3 -c 'import glob, zipfile; [zipfile.ZipFile(w).extractall(\"" + SITE + "\") "
    "for w in sorted(glob.glob(\"/tmp/streamctl-ha/wheels/*.whl\"))]'; "
    "PYTHONPATH=" + SITE + " python3 -c 'import patroni, psycopg, psutil, yaml, etcd'; "
    "mkdir -p /var/lib/postgresql/data; chown postgres:postgres /var/lib/postgresql/data; "
    "chmod 0755 " + ENTRYPOINT + "; rm -rf /tmp/streamctl-ha"
)


def dockerfile(base: str) -> str:
    return (f"FROM {base}\nCOPY debs /tmp/streamctl-ha/debs\nCOPY wheels /tmp/streamctl-ha/wheels\n"
            f"COPY member-entrypoint.sh {ENTRYPOINT}\nRUN {_INSTALL}\nENTRYPOINT [\"{ENTRYPOINT}\"]\n")


def materials_dir() -> Path:
    """$STREAMCTL_HA_MATERIALS, else /var/cache/streamctl/ha-member-<Patroni> as root, else the user's cache."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    name = "ha-member-" + PATRONI.rsplit("==", 1)[1] + f"-py{sys.version_info[0]}.{sys.version_info[1]}"
    if os.geteuid() == 0:
        return Path("/var/cache/streamctl") / name
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamctl" / name


def _run(argv: list[str], cwd: Path, what: str) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise PreflightError(f"could not prepare the HA member image's packages: {what}: {exc}",
                             hint="run ./scripts/install --test (it prepares them)") from None
    if proc.returncode != 0:
        raise PreflightError(f"could not prepare the HA member image's packages: {what} failed",
                             details=(proc.stderr or proc.stdout).strip().splitlines()[-10:],
                             hint="run ./scripts/install --test, or check that PyPI and the Debian mirror "
                                  "are reachable")
    return proc.stdout


def python_closure(cwd: Path) -> list[str]:
    """python3 and every package it depends on (recursively), as the host's apt resolves them."""
    out = _run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                "--no-breaks", "--no-replaces", "--no-enhances", "python3"], cwd, "apt-cache depends python3")
    return sorted({line.strip() for line in out.splitlines() if line and not line[0].isspace()
                   and not line.startswith("<")})


def materials(create: bool = True) -> Path:
    """The materials directory, prepared first when `create` and it is not complete."""
    root = materials_dir()
    if (root / "complete").exists() or not create:
        return root
    with _LOCK:
        if (root / "complete").exists():
            return root
        root.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
        try:
            (work / "wheels").mkdir()
            (work / "debs").mkdir()
            work.chmod(0o755)  # apt downloads as its own user where it can
            _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(work / "wheels"), PATRONI], work,
                 f"pip wheel {PATRONI}")
            _run(["apt-get", "download", "-q", *python_closure(work), "etcd-server"], work / "debs",
                 "apt-get download python3 etcd-server")
            (work / "complete").write_text(PATRONI + "\n")
            shutil.rmtree(root, ignore_errors=True)
            work.rename(root)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return root


def _context(base: str, root: Path) -> tuple[bytes, str]:
    """The build context (a tar) and the hash of every input but the base image."""
    digest = hashlib.sha256()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile(base).encode()),
                           ("member-entrypoint.sh", MEMBER_ENTRYPOINT.encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
            digest.update(name.encode() + data)
        for sub in ("debs", "wheels"):
            for path in sorted((root / sub).iterdir()):
                tar.add(str(path), arcname=f"{sub}/{path.name}")
                digest.update(f"{sub}/{path.name}:{path.stat().st_size}".encode())
    return buf.getvalue(), digest.hexdigest()


def member_image(client: Any, base: str) -> str:
    """The member image for `base` (present locally): built once, then found by its tag."""
    with docker_errors(f"inspect image {base}"):
        base_id = client.api.inspect_image(base)["Id"]
    with _LOCK:
        if base_id in _BUILT:
            return _BUILT[base_id]
    root = materials()
    with _LOCK:
        if base_id in _BUILT:
            return _BUILT[base_id]
        context, inputs = _context(base_id, root)  # FROM the image's id: two tags of one image, one build
        tag = f"{REPOSITORY}:{hashlib.sha256((base_id + inputs).encode()).hexdigest()[:16]}"
        if not _present(client, tag):
            _build(client, base, tag, context)
        _BUILT[base_id] = tag
        return tag


def _present(client: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.api.inspect_image(tag)
        return True
    except ImageNotFound:
        return False


def _build(client: Any, base: str, tag: str, context: bytes) -> None:
    lines: list[str] = []
    with docker_errors(f"build the HA member image from {base}"):
        for chunk in client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True,
                                      forcerm=True, pull=False, network_mode="none", decode=True,
                                      labels={LABEL_BASE: base}):
            lines += [x for x in str(chunk.get("stream", "")).splitlines() if x.strip()]
            if "error" in chunk:
                raise BackendError(f"building the HA member image from {base} failed: {chunk['error'].strip()}",
                                   details=lines[-15:], hint="the base image must be Debian-based with the "
                                   f"host's Python minor version ({sys.version_info[0]}.{sys.version_info[1]})")


if __name__ == "__main__":  # scripts/install --test
    print(materials())
