"""Redis: its configuration file (one renderer for the local, Docker and Swarm backends), its client URL and
its readiness probe.

redis.conf is read by `sdssplitargs`: a bare word ends at white space and a quote opens a quoted string,
so a value with either is written double-quoted, with `\\`, `"` and control characters escaped the way that
parser reads them back. The password is always written quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import quote

from streamctl.engines.tls import CA, CERT, KEY

Probe = Callable[[], bool]
HEADER = "# managed by streamctl"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\a": "\\a"}


def config_string(value: str) -> str:
    """`value` double-quoted for redis.conf."""
    out = (_ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 32 or ord(ch) == 127 else ch) for ch in value)
    return '"' + "".join(out) + '"'


def config_word(value: str) -> str:
    """`value` for redis.conf: bare when the parser reads it back unchanged, else quoted."""
    if value and not any(ch.isspace() or ch in "\"'\\" or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return value
    return config_string(value)


def listen_lines(port: int, tls_dir: str | None) -> list[str]:
    """The listening part of redis.conf: the TLS port only (plain `port 0`), or the plain port."""
    if tls_dir is None:
        return [f"port {port}"]
    return ["port 0", f"tls-port {port}", f"tls-cert-file {config_word(f'{tls_dir}/{CERT}')}",
            f"tls-key-file {config_word(f'{tls_dir}/{KEY}')}", f"tls-ca-cert-file {config_word(f'{tls_dir}/{CA}')}",
            "tls-auth-clients no"]  # clients prove themselves with the password; the server proves itself


def conf(password: str, port: int, tls_dir: str | None, process: Sequence[str] = (), header: bool = True) -> str:
    """redis.conf: where Redis listens (TLS files under `tls_dir` as the server sees them), its password,
    append-only persistence, then `process`: what a backend adds for its own way of running it (the local
    backend: bind address, data directory, pid and log files). `header`: the comment that marks the file."""
    lines = [HEADER] if header else []
    lines += [*listen_lines(port, tls_dir), f"requirepass {config_string(password)}", "appendonly yes", *process]
    return "\n".join(lines) + "\n"


def url(host: str, port: int, password: str, tls: bool, ca_file: str | None = None) -> str:
    """redis:// (rediss:// with TLS), the password percent-encoded; with `ca_file`, the CA to verify with as
    redis-py's query parameters."""
    out = f"{'rediss' if tls else 'redis'}://:{quote(password, safe='')}@{host}:{port}/0"
    if tls and ca_file:
        out += f"?ssl_ca_certs={quote(ca_file, safe='/')}&ssl_cert_reqs=required"
    return out


def probe(host: str, port: int, password: str | None, ca: str | None = None) -> Probe:
    """Ready when PING answers (logged in with `password`; over TLS verifying against `ca` when given)."""

    def run() -> bool:
        import redis

        client = redis.Redis(host=host, port=port, password=password, socket_timeout=3,
                             socket_connect_timeout=3, ssl=ca is not None, ssl_ca_certs=ca,
                             ssl_cert_reqs="required", ssl_check_hostname=ca is not None)
        try:
            return bool(client.ping())
        finally:
            client.close()

    return run
