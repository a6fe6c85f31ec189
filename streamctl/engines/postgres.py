"""PostgreSQL: libpq connection strings and URIs built from parts, the server's settings (its file, TLS),
and the readiness probe.

Quoting follows libpq (`conninfo_parse`): a keyword value that is empty or holds white space, a single
quote or a backslash is single-quoted, with `\\` and `'` escaped by a backslash; URIs are percent-encoded.
Every keyword string streamctl stores in a catalogue (a subscription's connection, Citus's authinfo and
node_conninfo) or hands to libpq comes from `conninfo`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

from streamctl.engines.tls import CA, CERT, KEY

Probe = Callable[[], bool]


def keyword_value(value: str) -> str:
    """One libpq keyword value: bare when libpq reads it back unchanged, else single-quoted and escaped."""
    if value and not any(ch.isspace() or ch in "'\\" for ch in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**params: object) -> str:
    """A libpq keyword/value string, keywords in the order given (None values left out)."""
    return " ".join(f"{key}={keyword_value(str(value))}" for key, value in params.items() if value is not None)


def authinfo(password: str) -> str:
    """Citus's pg_dist_authinfo entry for a role that logs in with `password` (libpq keywords)."""
    return conninfo(password=password)


def uri(host: str, port: int, dbname: str, user: str, password: str | None = None,
        params: Mapping[str, object] | None = None) -> str:
    """postgresql://user:password@host:port/dbname?params, every part percent-encoded (libpq decodes %XX in a
    URI, but not `+`: quote, never quote_plus)."""
    return leader_uri([(host, port)], dbname, user, password, params)


def leader_uri(addresses: Sequence[tuple[str, int]], dbname: str, user: str, password: str | None = None,
               params: Mapping[str, object] | None = None) -> str:
    """The URI of whichever of `addresses` leads: libpq tries them in turn and, with more than one, keeps the
    first that is not a standby (target_session_attrs=primary), so a client follows a group's leader across a
    failover without being told. `primary`, not `read-write`: a role that reads only (the gateway's,
    default_transaction_read_only) would find every member "read-only". One address: `uri`'s plain URI."""
    credentials = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
    params = {**(params or {}), **({"target_session_attrs": "primary"} if len(addresses) > 1 else {})}
    query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in params.items())
    hosts = ",".join(f"{host}:{port}" for host, port in addresses)
    return f"postgresql://{credentials}@{hosts}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def leader_params(addresses: Sequence[tuple[str, int]]) -> dict[str, str]:
    """libpq keywords for a multi-host connection to the member that takes writes (for `conninfo`)."""
    return {"host": ",".join(h for h, _ in addresses), "port": ",".join(str(p) for _, p in addresses),
            "target_session_attrs": "primary"}


def verify_full(ca_path: str) -> dict[str, str]:
    """libpq parameters of a client that requires TLS and checks the server's certificate and name."""
    return {"sslmode": "verify-full", "sslrootcert": ca_path}


# -- SQL text no driver quotes (a single-user backend fed on stdin) ------------------------------------------
def sql_literal(value: str) -> str:
    """A string constant: `'` doubled (standard_conforming_strings is on: a backslash is itself)."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted identifier: `"` doubled."""
    return '"' + name.replace('"', '""') + '"'


# -- the server ---------------------------------------------------------------------------------------------
def conf_line(key: str, value: str) -> str:
    """One postgresql.conf line; the value single-quoted, `'` doubled and `\\` escaped as the file's parser
    reads them."""
    return f"{key} = '" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def tls_settings(tls_dir: str, citus: bool) -> list[tuple[str, str]]:
    """ssl on with the node's certificate (its files under `tls_dir`, as the server sees it); a node that runs
    Citus (the topology says which) also verifies the nodes it connects to."""
    settings = [("ssl", "on"), ("ssl_cert_file", f"{tls_dir}/{CERT}"), ("ssl_key_file", f"{tls_dir}/{KEY}"),
                ("ssl_min_protocol_version", "TLSv1.2")]
    if citus:
        settings.append(("citus.node_conninfo", conninfo(**verify_full(f"{tls_dir}/{CA}"))))
    return settings


# -- readiness ----------------------------------------------------------------------------------------------
def probe(dsn: str, query: str = "SELECT 1") -> Probe:
    """Ready when a real query answers, not merely when the port is open."""

    def run() -> bool:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(query).fetchone()  # type: ignore[arg-type]
            return row is not None and bool(row[0])

    return run
