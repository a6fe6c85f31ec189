"""A local node's TLS files: the CA, its certificate and key in <node>/tls, owned by the server's user."""

from __future__ import annotations

import os
from pathlib import Path

from streamctl.backends.local.privileges import RunAs


def install_tls(tls_dir: Path, files: dict[str, tuple[bytes, int]], run_as: RunAs) -> None:
    """Each file written with its mode (keys 0600) and handed to the server's user."""
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_as.chown(tls_dir)
    for name, (content, mode) in files.items():
        target = tls_dir / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(content)
        run_as.chown(target)
