"""Connections to PostgreSQL nodes: external nodes' connection strings, and a missing privilege translated
into an error that names the node and the privilege (a read-only role must know what to ask for)."""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from streamctl.config.model import Node
from streamctl.engines import postgres as pg_engine
from streamctl.errors import BackendError, ConfigError, ExitCode, StreamctlError
from streamctl.state import Endpoint

# Every connection streamctl opens: TCP keepalives, so a peer that vanished (host down, network cut) ends
# the connection in about a minute instead of leaving a statement waiting forever on a dead socket.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3"}
LOCK_TIMEOUT_VAR = "STREAMCTL_PG_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = "60s"
_DURATION = re.compile(r"^[0-9]+ ?(ms|s|min|h)?$")


def lock_timeout() -> str:
    """How long one of streamctl's statements waits for a lock another session holds before it fails
    (PostgreSQL's lock_timeout; STREAMCTL_PG_LOCK_TIMEOUT, e.g. `5min`; 0 waits for ever). Statements
    themselves are not bounded (seeding and shard moves run long), their waits on locks are."""
    value = os.environ.get(LOCK_TIMEOUT_VAR, "").strip() or DEFAULT_LOCK_TIMEOUT
    if not _DURATION.match(value):
        raise ConfigError(f"{LOCK_TIMEOUT_VAR}={value!r} is not a duration",
                          hint="write it as PostgreSQL does: 500ms, 30s, 5min, 1h (0: no limit)")
    return value.replace(" ", "")


def session_params() -> dict[str, str]:
    """libpq parameters every streamctl connection carries: keepalives, and lock_timeout as a session
    default (set at login through `options`, so `RESET ALL` keeps it)."""
    return {**KEEPALIVES, "options": f"-c lock_timeout={lock_timeout()}"}


class LockWaitTimeout(StreamctlError, exit_code=ExitCode.TIMEOUT):
    """A statement waited longer than lock_timeout for a lock another session holds."""


def translate_db_error(what: str, exc: BaseException) -> StreamctlError:
    """A driver error as the user should read it: a lock wait that ran out names the setting that bounds
    it; a lost connection says so; anything else keeps PostgreSQL's first line (exit code 5)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return LockWaitTimeout(f"{what}: {first}", hint=(
            "another session holds a lock streamctl needs (see pg_locks and pg_stat_activity on that node); "
            f"end it, or allow a longer wait with {LOCK_TIMEOUT_VAR} (now {lock_timeout()})"))
    if isinstance(exc, psycopg.OperationalError):
        return BackendError(f"{what}: {first}", hint="the connection to the node was lost or refused: "
                                                     "check it with `streamctl status`")
    return BackendError(f"{what}: {first}")


class PrivilegeError(StreamctlError, exit_code=ExitCode.PREFLIGHT):
    """The role streamctl connects as lacks a privilege on a node; names the node and the privilege."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        self.privilege = message
        super().__init__(f"{node}: missing privilege: {message}", hint=_grant_hint(message))


def _grant_hint(message: str) -> str:
    m = re.search(r"permission denied for (table|view|relation|schema|function|database|sequence) (\S+)",
                  message)
    if m:
        kind, obj = m.group(1), m.group(2).strip('"')
        what = {"table": "SELECT ON TABLE", "view": "SELECT ON TABLE", "relation": "SELECT ON TABLE",
                "sequence": "SELECT ON SEQUENCE", "schema": "USAGE ON SCHEMA",
                "function": "EXECUTE ON FUNCTION", "database": "CONNECT ON DATABASE"}[kind]
        return (f"grant it to the role streamctl connects as (e.g. GRANT {what} {obj} TO <role>), or use a "
                "role that has it")
    return "use a role that has this privilege for this command (read-only commands need SELECT and pg_monitor)"


class NodeCursor(psycopg.Cursor[Any]):
    """A cursor whose `permission denied` becomes a PrivilegeError naming its node."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> NodeCursor:
        try:
            super().execute(query, params, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            node = getattr(self.connection, "node_name", None) or "a node"
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PrivilegeError(node, text) from None
        return self


class NodeConnection(psycopg.Connection[Any]):
    """A connection that knows which topology node it reaches (for error messages); one taken from
    KeptConnections goes back there when its `with` block ends without an error."""

    node_name: str = ""
    kept_by: KeptConnections | None = None
    kept_key: str = ""

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is None and self.kept_by is not None and self.kept_by.give_back(self):
            return
        super().__exit__(exc_type, exc_val, exc_tb)


class KeptConnections:
    """Logins kept for a run of many short steps (`up`'s configuration): one verified TLS login per node
    and database instead of one per step. A connection comes back only idle, outside a transaction, and
    with its session settings reset; one that ended in an error is closed instead."""

    def __init__(self) -> None:
        self._idle: dict[str, list[NodeConnection]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> NodeConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give_back(self, conn: NodeConnection) -> bool:
        if conn.closed or not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
            return False
        try:
            conn.execute("RESET ALL")
        except psycopg.Error:
            return False
        with self._lock:
            self._idle.setdefault(conn.kept_key, []).append(conn)
        return True

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.kept_by = None
            conn.close()


def external_conninfo(node: Node, default_user: str, dbname: str | None = None, connect_timeout: int = 5,
                      application_name: str = "streamctl") -> str:
    """libpq keywords for an external node, TLS settings passed through; the password only in memory."""
    ext = node.external
    assert ext is not None
    return pg_engine.conninfo(host=node.host, port=node.port, user=ext.user or default_user,
                              dbname=dbname or node.database or "postgres", connect_timeout=connect_timeout,
                              application_name=application_name, password=ext.password or None,
                              sslmode=ext.sslmode or None, sslrootcert=ext.sslrootcert or None, **session_params())


def external_endpoint(node: Node) -> Endpoint:
    """An external node's endpoint: reached at host:port, known to the other nodes at its Citus address."""
    internal = node.citus_address or (node.host, node.port)
    return Endpoint(node.name, node.role.value, node.engine.value, "external", node.host, node.port,
                    internal[0], internal[1], node.database)


def write_data_file(conn: psycopg.Connection[Any], node: str, name: str, content: str) -> None:
    """Write `name` in the server's data directory through SQL (COPY ... TO a server file, superuser): the
    server writes it as its own user, with its own mode, wherever it runs (a container, another host).
    COPY's text format would escape tabs and backslashes, so content with them is refused."""
    lines = content.rstrip("\n").split("\n")
    if any(ch in line for line in lines for ch in "\t\\\r"):
        raise BackendError(f"cannot write {name} on {node}: tabs and backslashes are not supported")
    row = conn.execute("SELECT current_setting('data_directory') || '/' || %s", (name,)).fetchone()
    assert row is not None
    conn.execute(sql.SQL("COPY (SELECT unnest({}::text[])) TO {}").format(sql.Literal(lines), sql.Literal(row[0])))


def row_estimates(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> dict[str, int]:
    """The planner's row estimate (pg_class.reltuples) of each table that exists; 0 before its first ANALYZE."""
    rows = conn.execute("SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class WHERE relkind IN ('r', 'p') "
                        "AND relname = ANY(%s) AND relnamespace = 'public'::regnamespace", (list(tables),))
    return {str(r[0]): int(r[1]) for r in rows.fetchall()}


def archiver_counts(conn: psycopg.Connection[Any]) -> tuple[int, int, bool]:
    """(WAL files archived, archiving attempts failed, archive_mode on) from pg_stat_archiver."""
    row = conn.execute("SELECT archived_count, failed_count, current_setting('archive_mode') <> 'off' "
                       "FROM pg_stat_archiver").fetchone()
    return (int(row[0]), int(row[1]), bool(row[2])) if row else (0, 0, False)
