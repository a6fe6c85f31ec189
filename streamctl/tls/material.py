"""The cluster's certificates on disk: the CA and one certificate per node under <state>/tls (keys 0600).

`ensure` (run by `up`) creates the CA on first use and (re)issues a node's certificate when it is missing,
no longer covers the names the node is reached by, was signed by another CA, or expires within 30 days.
`current` answers the same question without writing anything (dry runs, plans, `verify`).
Certificates brought by the user (topology `tls.*`) are used as they are.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from streamctl.atomic import write_file
from streamctl.config.model import Node, Topology
from streamctl.errors import ConfigError
from streamctl.tls import certs

WILDCARDS = ("0.0.0.0", "::", "")
GATEWAY = "gateway"  # the name under which the gateway's own certificate is kept


@dataclass(frozen=True)
class NodeTls:
    """What one server needs: the CA to trust, its certificate and its private key (PEM bytes)."""

    ca: bytes
    cert: bytes
    key: bytes

    @property
    def fingerprint(self) -> str:
        return certs.digest(self.ca, self.cert, self.key)


def reach_names(topology: Topology, host: str, bind: str, *names: str) -> set[str]:
    """Every name a server is reached by: its own names, loopback, its address (the host name when it
    binds every interface, so clients on other machines can verify it too)."""
    out = {*names, "localhost", "127.0.0.1", host}
    if bind in WILDCARDS:
        out.add(socket.gethostname())
    else:
        out.add(bind)
    return {n for n in out if n}


def node_names(topology: Topology, node: Node) -> set[str]:
    """Node name (Docker network alias, Swarm service), container name, loopback, bind address."""
    return reach_names(topology, node.host, node.bind, node.name, f"{topology.cluster}-{node.name}")


def gateway_names(topology: Topology, bind: str | None = None) -> set[str]:
    bind = topology.gateway.host if bind is None else bind
    host = "127.0.0.1" if bind in WILDCARDS else bind
    return reach_names(topology, host, bind)


class ClusterTls:
    """The only place that knows where certificates live and when they must be reissued."""

    def __init__(self, topology: Topology, state_root: Path, base: Path) -> None:
        self.topology = topology
        self.dir = state_root / "tls"
        self.ca_file = self.dir / "ca.crt"  # the CA certificate every client streamctl configures verifies with
        self.ca_key_file = self.dir / "ca.key"
        self.base = base  # the topology file's directory: relative paths in `tls.*` start there
        self._lock = threading.Lock()  # `up` launches nodes in parallel threads

    @property
    def enabled(self) -> bool:
        return self.topology.tls.enabled

    def cert_file(self, name: str) -> Path:
        return self.dir / "nodes" / f"{name}.crt"

    def key_file(self, name: str) -> Path:
        return self.dir / "nodes" / f"{name}.key"

    def deployed_cert(self, name: str) -> Path:
        """The certificate file a server was given: the user's own, or the one streamctl issued."""
        byo = self.topology.tls.certificates.get(name)
        return self._path(byo.cert) if byo is not None else self.cert_file(name)

    def deployed_key(self, name: str) -> Path:
        byo = self.topology.tls.certificates.get(name)
        return self._path(byo.key) if byo is not None else self.key_file(name)

    def _path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    # -- the CA -----------------------------------------------------------------------------------
    def _own_ca(self) -> certs.KeyPair | None:
        """The CA as configured: the user's files, or the generated one (None before the first up)."""
        spec = self.topology.tls
        if spec.ca_cert:
            cert = self._path(spec.ca_cert).read_bytes()
            key = self._path(spec.ca_key).read_bytes() if spec.ca_key else b""
            return certs.KeyPair(cert, key)
        if self.ca_key_file.exists() and self.ca_file.exists():
            return certs.KeyPair(self.ca_file.read_bytes(), self.ca_key_file.read_bytes())
        return None

    def ensure_ca(self) -> certs.KeyPair:
        ca = self._own_ca()
        if ca is None:
            ca = certs.new_ca(self.topology.cluster)
            write_file(self.ca_key_file, ca.key, 0o600, dir_mode=0o700)
        if not self.ca_file.exists() or self.ca_file.read_bytes() != ca.cert:
            write_file(self.ca_file, ca.cert, 0o644, dir_mode=0o700)
        return ca

    # -- server certificates ----------------------------------------------------------------------
    def current(self, name: str, names: set[str]) -> NodeTls | None:
        """The certificate a server would get now, or None when `ensure` would (re)issue it."""
        ca = self._own_ca()
        if ca is None:
            return None
        byo = self.topology.tls.certificates.get(name)
        if byo is not None:
            return NodeTls(ca.cert, self._path(byo.cert).read_bytes(), self._path(byo.key).read_bytes())
        cert_file, key_file = self.cert_file(name), self.key_file(name)
        if not (cert_file.exists() and key_file.exists()):
            return None
        cert = cert_file.read_bytes()
        if (certs.names_of(cert) != names or not certs.signed_by(cert, ca.cert)
                or certs.days_left(cert) < certs.RENEW_WITHIN_DAYS):
            return None
        return NodeTls(ca.cert, cert, key_file.read_bytes())

    def ensure(self, name: str, names: set[str]) -> NodeTls:
        """The server's certificate, issued or reissued as needed (the CA is created on first use)."""
        with self._lock:
            return self._ensure(name, names)

    def _ensure(self, name: str, names: set[str]) -> NodeTls:
        ca = self.ensure_ca()
        have = self.current(name, names)
        byo = self.topology.tls.certificates.get(name)
        if have is not None:
            if byo is not None:
                missing = names - certs.names_of(have.cert)
                if missing:
                    raise ConfigError(f"tls.certificates.{name}.cert does not cover {', '.join(sorted(missing))}",
                                      hint="clients verify the host name: add these names to the certificate's "
                                           "subject alternative names, or remove it to let streamctl issue one")
            return have
        if not ca.key:
            raise ConfigError(f"tls.certificates.{name}: no certificate for {name} and no tls.ca_key to sign one",
                              hint="give the CA's key (tls.ca_key) or a certificate for every node")
        pair = certs.issue_server(ca, name, names)
        write_file(self.key_file(name), pair.key, 0o600, dir_mode=0o700)
        write_file(self.cert_file(name), pair.cert, 0o644, dir_mode=0o700)
        return NodeTls(ca.cert, pair.cert, pair.key)

    def desired_fingerprint(self, name: str, names: set[str]) -> str:
        """Without side effects: the current material's fingerprint, or a marker that it will change."""
        have = self.current(name, names)
        return have.fingerprint if have is not None else "reissue:" + ",".join(sorted(names))

    def for_node(self, node: Node) -> NodeTls:
        return self.ensure(node.name, node_names(self.topology, node))

    def node_fingerprint(self, node: Node) -> str:
        return self.desired_fingerprint(node.name, node_names(self.topology, node))
