"""MongoDB: its client URI (user and password percent-encoded), mongod's TLS options, and the readiness probe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from streamctl.engines.tls import CA, PEM

Probe = Callable[[], bool]
# Clients give up instead of hanging: to connect, to find the server, and for an answer (bulk inserts of a
# seed included, hence the generous socket timeout).
TIMEOUTS = "connectTimeoutMS=5000&serverSelectionTimeoutMS=5000&socketTimeoutMS=120000"


def uri(host: str, port: int, user: str | None = None, password: str | None = None,
        auth_source: str | None = None, timeouts: bool = False, tls: bool = False, ca_file: str | None = None) -> str:
    """mongodb://user:password@host:port/?... for one server (directConnection), every part percent-encoded."""
    credentials = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
    query = [f"authSource={quote(auth_source, safe='')}"] if auth_source else []
    query.append("directConnection=true")
    if timeouts:
        query.append(TIMEOUTS)
    if tls or ca_file:
        query.append("tls=true")
    if ca_file:
        query.append(f"tlsCAFile={quote(ca_file, safe='/')}")
    return f"mongodb://{credentials}{host}:{port}/?{'&'.join(query)}"


def tls_args(tls_dir: str) -> list[str]:
    """mongod's documented command-line options for TLS-only connections (no client certificates)."""
    return ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", f"{tls_dir}/{PEM}", "--tlsCAFile",
            f"{tls_dir}/{CA}", "--tlsAllowConnectionsWithoutCertificates"]


def tls_yaml(tls_dir: str) -> list[str]:
    """The same as tls_args, as lines of the `net:` section of mongod.conf."""
    return ["  tls:", "    mode: requireTLS", f"    certificateKeyFile: {tls_dir}/{PEM}",
            f"    CAFile: {tls_dir}/{CA}", "    allowConnectionsWithoutCertificates: true"]


def probe(dsn: str) -> Probe:
    """Ready when the server answers ping."""

    def run() -> bool:
        from pymongo import MongoClient

        client: MongoClient[Any] = MongoClient(dsn, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                                              socketTimeoutMS=3000)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    return run
