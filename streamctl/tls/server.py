"""What each engine's server needs for TLS, given the directory holding its files (as the server sees it).

Both backends call these, so a local process and a container get the same settings. Every server finds
`ca.crt`, `server.crt`, `server.key` (and `server.pem`, certificate + key, for mongod) in its directory.
"""

from __future__ import annotations

from streamctl.config.model import Node
from streamctl.tls.material import NodeTls

CA, CERT, KEY, PEM = "ca.crt", "server.crt", "server.key", "server.pem"


def server_files(engine: str, tls: NodeTls) -> dict[str, tuple[bytes, int]]:
    """File name -> (content, mode) for one server; private keys 0600."""
    files = {CA: (tls.ca, 0o644), CERT: (tls.cert, 0o644), KEY: (tls.key, 0o600)}
    if engine == "mongo":
        files[PEM] = (tls.cert + tls.key, 0o600)
    return files


def libpq_verify(ca_path: str) -> dict[str, str]:
    """libpq parameters of a client that requires TLS and checks the server's certificate and name."""
    return {"sslmode": "verify-full", "sslrootcert": ca_path}


def postgres_settings(node: Node, tls_dir: str) -> list[tuple[str, str]]:
    """ssl on with the node's certificate; a Citus node also verifies the nodes it connects to."""
    settings = [("ssl", "on"), ("ssl_cert_file", f"{tls_dir}/{CERT}"), ("ssl_key_file", f"{tls_dir}/{KEY}"),
                ("ssl_min_protocol_version", "TLSv1.2")]
    if ("shared_preload_libraries", "citus") in node.settings:
        conninfo = " ".join(f"{k}={v}" for k, v in libpq_verify(f"{tls_dir}/{CA}").items())
        settings.append(("citus.node_conninfo", conninfo))
    return settings


def redis_lines(port: int, tls_dir: str | None) -> list[str]:
    """The listening part of redis.conf: the TLS port only (plain `port 0`), or the plain port."""
    if tls_dir is None:
        return [f"port {port}"]
    return ["port 0", f"tls-port {port}", f"tls-cert-file {tls_dir}/{CERT}", f"tls-key-file {tls_dir}/{KEY}",
            f"tls-ca-cert-file {tls_dir}/{CA}",
            "tls-auth-clients no"]  # clients prove themselves with the password; the server proves itself


def mongo_args(tls_dir: str) -> list[str]:
    """mongod's documented command-line options for TLS-only connections (no client certificates)."""
    return ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", f"{tls_dir}/{PEM}", "--tlsCAFile",
            f"{tls_dir}/{CA}", "--tlsAllowConnectionsWithoutCertificates"]


def mongo_yaml(tls_dir: str) -> list[str]:
    """The same as mongo_args, as lines of the `net:` section of mongod.conf."""
    return ["  tls:", "    mode: requireTLS", f"    certificateKeyFile: {tls_dir}/{PEM}",
            f"    CAFile: {tls_dir}/{CA}", "    allowConnectionsWithoutCertificates: true"]
