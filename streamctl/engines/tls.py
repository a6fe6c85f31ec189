"""Where every server finds its TLS files, whatever runs it (a local process, a container, a Swarm task).

Each server's directory holds `ca.crt`, `server.crt`, `server.key` (and `server.pem`, certificate + key, for
mongod); the engines' modules point their settings at them. The CA and the certificates themselves are
made and kept by `streamctl/tls/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamctl.tls.material import NodeTls

CA, CERT, KEY, PEM = "ca.crt", "server.crt", "server.key", "server.pem"


def server_files(engine: str, tls: NodeTls) -> dict[str, tuple[bytes, int]]:
    """File name -> (content, mode) for one server; private keys 0600."""
    files = {CA: (tls.ca, 0o644), CERT: (tls.cert, 0o644), KEY: (tls.key, 0o600)}
    if engine == "mongo":
        files[PEM] = (tls.cert + tls.key, 0o600)
    return files
