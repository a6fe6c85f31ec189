"""PostgreSQL basics on any node: its database, versioned schema files from sql/ (see assets.py), and managed pg_hba."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from streamctl.assets import asset_dir
from streamctl.backends.base import Backend
from streamctl.config.model import Engine, Node
from streamctl.context import ClusterContext
from streamctl.errors import StepError
from streamctl.names import SCHEMA_VERSION_TABLE, SPARE_DATABASE
from streamctl.steps import After, ConfigStep

AFTER_DISTRIBUTION = "-- streamctl: after-distribution"
HBA_STEP = "access rules (pg_hba)"


@dataclass(frozen=True)
class SchemaFile:
    version: int
    name: str
    text: str
    after_distribution: bool

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def schema_files(kind: str) -> list[SchemaFile]:
    """The ordered SQL files of one database kind (`metadata` or `analytics`), shipped in the package."""
    folder = asset_dir("sql").joinpath(kind)
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text()
        version = int(entry.name.split("_", 1)[0])
        out.append(SchemaFile(version, entry.name, text, AFTER_DISTRIBUTION in text.splitlines()[0]))
    return out


# -- database -------------------------------------------------------------------------------------------
def database_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: every PostgreSQL node's database."""
    return [database_step(ctx, n) for n in ctx.topology.nodes() if n.engine is Engine.POSTGRES]


def database_step(ctx: ClusterContext, node: Node) -> ConfigStep:
    """The node's database: the template's spare database renamed when it is as CREATE DATABASE would
    make it (a catalogue update, where CREATE DATABASE copies template1 through the WAL), else created."""
    db = node.database or "postgres"

    def present(conn: psycopg.Connection[Any]) -> tuple[bool, bool]:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname IN (%s, %s)",
                                            (db, SPARE_DATABASE))}
        return db in names, SPARE_DATABASE in names

    def pending() -> list[str]:
        with ctx.pg_connect(node.name, "postgres") as conn:
            found, _ = present(conn)
        return [] if found else [f"create database {db}"]

    def apply() -> None:
        with ctx.pg_connect(node.name, "postgres") as conn:
            found, spare = present(conn)
            if found:
                return
            if spare and spare_is_empty(ctx, node.name):
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(SPARE_DATABASE), sql.Identifier(db)))
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    return ConfigStep(node.name, "database", pending, apply, after=())


def spare_is_empty(ctx: ClusterContext, node: str) -> bool:
    """Nothing in the spare beyond what CREATE DATABASE gives: an image's init scripts run in the database
    it was made as (POSTGRES_DB), and what they made there (Citus's extension, with a server id that must
    differ between nodes) must not become every node's. A spare that is not empty is left as it is."""
    conn = ctx.pg_connect(node, SPARE_DATABASE)
    try:
        row = conn.execute(
            "SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname <> 'plpgsql') "
            "AND NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "  AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%')").fetchone()
    finally:
        conn.close()  # not kept for the next step: a database with a session cannot be renamed
    return bool(row and row[0])


# -- schema ---------------------------------------------------------------------------------------------
def applied_versions(conn: psycopg.Connection[Any]) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SCHEMA_VERSION_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute(f"SELECT version, checksum FROM {SCHEMA_VERSION_TABLE}").fetchall()
    return {int(v): str(c) for v, c in rows}


def schema_step(ctx: ClusterContext, node: Node, kind: str, after_distribution: bool) -> ConfigStep:
    """Apply the not-yet-applied files of one phase, each in a transaction with its version row."""
    files = [f for f in schema_files(kind) if f.after_distribution == after_distribution]
    name = f"schema {kind}" + (" (constraints)" if after_distribution else "")

    def pending() -> list[str]:
        with ctx.pg_connect(node.name) as conn:
            done = applied_versions(conn)
        for f in files:
            if f.version in done and done[f.version] != f.checksum:
                raise StepError(f"{f.name} was changed after it was applied to {node.name}",
                                hint="add a new numbered file instead of editing an applied one")
        return [f"apply {f.name}" for f in files if f.version not in done]

    def apply() -> None:
        with ctx.pg_connect(node.name) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version integer PRIMARY KEY, "
                         "name text NOT NULL, checksum text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            done = applied_versions(conn)
            for f in files:
                if f.version in done:
                    continue
                with conn.transaction():
                    conn.execute(f.text.encode())
                    conn.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE} (version, name, checksum) "
                                 "VALUES (%s, %s, %s)", (f.version, f.name, f.checksum))

    return ConfigStep(node.name, name, pending, apply, after=())  # its node's earlier steps only


# -- roles ----------------------------------------------------------------------------------------------
def ensure_login_role(conn: psycopg.Connection[Any], role: str, password: str, *attributes: str) -> None:
    """Create the role, or reset its password and attributes (idempotent)."""
    attrs = sql.SQL(" ").join(sql.SQL(a) for a in ("LOGIN", *attributes))
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
    conn.execute(sql.SQL("{} {} {} PASSWORD {}").format(verb, sql.Identifier(role), attrs,
                                                        sql.Literal(password)))


def ensure_read_only_role(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    """A login role that cannot write even where a grant would let it (default read-only transactions)."""
    ensure_login_role(conn, role, password, "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION")
    conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(role)))


def grant_read(conn: psycopg.Connection[Any], role: str, database: str, schema: str,
               tables: tuple[str, ...]) -> None:
    """CONNECT on the database, USAGE on the schema, SELECT on the tables: all a reader needs."""
    ident = sql.Identifier(role)
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
        sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables), ident))


def reader_pending(conn: psycopg.Connection[Any], role: str, tables: tuple[str, ...], kind: str = "role") -> list[str]:
    """What a reading role still lacks: the role itself, or SELECT on some of its tables."""
    if not role_exists(conn, role):
        return [f"create {kind} {role}"]
    missing = missing_select_grants(conn, role, tables)
    return [f"grant select on {', '.join(missing)} to {role}"] if missing else []


def role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def missing_select_grants(conn: psycopg.Connection[Any], role: str, tables: tuple[str, ...]) -> list[str]:
    return [t for t in tables
            if not conn.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, %s, 'SELECT')",
                                (t, role, t)).fetchone()[0]]  # type: ignore[index]


# -- pg_hba ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HbaRule:
    """Admit `user` to `database` only from `addresses`; everyone else for that user is rejected."""

    database: str
    user: str
    addresses: tuple[str, ...]


def hba_address(address: str) -> str:
    """An address as pg_hba takes it (a CIDR), or a StepError before anything is written: a host name there
    would leave an invalid file behind, and the server would not start again."""
    try:
        return str(ipaddress.ip_network(address, strict=False))
    except ValueError:
        raise StepError(f"{address!r} is not an IP address: pg_hba.conf admits connections by IP address",
                        hint="give the node an IP address in the topology (bind, or external.citus_host)") from None


def render_hba(superuser: str, rules: list[HbaRule], tls: bool = True) -> str:
    """With TLS on every network login line is `hostssl`: a plain-text connection matches none and is refused."""
    host = "hostssl" if tls else "host"
    lines = ["# managed by streamctl: rewritten by every `streamctl up`",
             "# TYPE  DATABASE  USER  ADDRESS  METHOD",
             "local   all  all  scram-sha-256"]
    for rule in rules:
        for cidr in sorted({hba_address(a) for a in rule.addresses}):
            lines.append(f"{host} {rule.database}  {rule.user}  {cidr}  scram-sha-256")
        lines.append(f"host    all  {rule.user}  all  reject")
    lines.append(f"{host} all  {superuser}  all  scram-sha-256")
    lines.append(f"{host} all  all  all  scram-sha-256")
    lines.append("host    replication  all  all  reject")
    return "\n".join(lines) + "\n"


def install_hba(ctx: ClusterContext, backend: Backend, node: Node, content: str) -> None:
    """Write pg_hba.conf and reload, but only a file PostgreSQL accepts: pg_hba_file_rules parses the file
    on disk, so errors are seen before the reload, and the previous file is put back (a server whose
    pg_hba.conf has errors keeps running on the old rules, but would not start again)."""
    with ctx.pg_connect(node.name, "postgres") as conn:
        row = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()
    previous = row[0] if row else ""
    backend.write_pg_file(node, "pg_hba.conf", content)
    with ctx.pg_connect(node.name, "postgres") as conn:
        errors = conn.execute("SELECT line_number, error FROM pg_hba_file_rules "
                              "WHERE error IS NOT NULL ORDER BY line_number").fetchall()
        if not errors:
            conn.execute("SELECT pg_reload_conf()")
            return
    # Whitespace is whitespace to pg_hba; tabs cannot go through the SQL file writer (Docker, Swarm).
    backend.write_pg_file(node, "pg_hba.conf", previous.replace("\t", " ").replace("\r", ""))
    raise StepError(f"PostgreSQL rejected the pg_hba.conf streamctl wrote on {node.name}; the previous file "
                    "is back", details=[f"line {n}: {e}" for n, e in errors],
                    hint="report this: the rules come from the topology and should have been refused earlier")


def hba_step(ctx: ClusterContext, backend: Backend, node: Node, rules: list[HbaRule],
             after: After = ()) -> ConfigStep:
    def desired() -> str:
        return render_hba(ctx.topology.pg_user, rules, ctx.managed_tls(node.name))

    def pending() -> list[str]:
        wanted = desired()  # refuses an address that is not an IP before anything is read or written
        with ctx.pg_connect(node.name, "postgres") as conn:
            row = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()
        current = row[0] if row else ""
        if current == wanted:
            return []
        scope = "; ".join(f"{r.user} only from {', '.join(r.addresses) or 'nowhere'}" for r in rules)
        tls = "TLS only; " if ctx.managed_tls(node.name) else ""
        return [f"rewrite pg_hba.conf ({tls}{scope or 'password logins only'})"]

    def apply() -> None:
        install_hba(ctx, backend, node, desired())

    # It rewrites a file and reloads: nothing the node's other steps touch, so it runs beside them.
    return ConfigStep(node.name, HBA_STEP, pending, apply, after=after, in_node_order=False)
