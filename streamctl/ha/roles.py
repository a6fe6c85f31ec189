"""The roles Patroni logs in as besides the superuser: its standbys' replication user and the rewind user
(pg_rewind of a former leader needs only these four functions). Patroni makes them when it bootstraps a
group itself; a node that already holds data gets them from here before Patroni first starts on it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from streamctl.engines.postgres import sql_ident, sql_literal
from streamctl.names import HA_REPLICATION_USER, HA_REWIND_USER

REWIND_FUNCTIONS = ("pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)",
                    "pg_read_binary_file(text)", "pg_read_binary_file(text, bigint, bigint, boolean)")


def ensure_patroni_roles(conn: psycopg.Connection[Any], ha_secrets: dict[str, str]) -> None:
    """On this node only (Citus's propagation of roles off: each member is done for itself), unlogged: the
    statements carry passwords."""
    with conn.transaction():
        for setting, value in (("log_statement", "none"), ("log_min_error_statement", "panic"),
                               ("citus.enable_create_role_propagation", "off"),
                               ("citus.enable_alter_role_propagation", "off")):
            conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
        for role, attributes, key in ((HA_REPLICATION_USER, "LOGIN REPLICATION", "replication_password"),
                                      (HA_REWIND_USER, "LOGIN", "rewind_password")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            conn.execute(sql.SQL("{} {} {} PASSWORD {}").format(
                sql.SQL("ALTER ROLE" if exists else "CREATE ROLE"), sql.Identifier(role), sql.SQL(attributes),
                sql.Literal(ha_secrets[key])))
        for function in REWIND_FUNCTIONS:
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.{} TO {}").format(
                sql.SQL(function), sql.Identifier(HA_REWIND_USER)))


def patroni_roles_statements(ha_secrets: dict[str, str]) -> list[str]:
    """The same roles as SQL statements for a server that does not run yet (a single-user backend fed on
    stdin: the local backend's copy of its template), where neither role exists; run in `postgres`, where
    pg_rewind connects (a function's grant belongs to one database)."""
    return [f"CREATE ROLE {sql_ident(HA_REPLICATION_USER)} LOGIN REPLICATION PASSWORD "
            f"{sql_literal(ha_secrets['replication_password'])}",
            f"CREATE ROLE {sql_ident(HA_REWIND_USER)} LOGIN PASSWORD {sql_literal(ha_secrets['rewind_password'])}",
            *(f"GRANT EXECUTE ON FUNCTION pg_catalog.{f} TO {sql_ident(HA_REWIND_USER)}" for f in REWIND_FUNCTIONS)]


def citus_bootstrap_statements(superuser: str, authinfo: str) -> list[str]:
    """What Patroni's Citus mode does when it bootstraps a group itself, for data it finds made instead: the
    extension in the group's database and the superuser's node-to-node credentials (Citus preloaded). Until
    the extension exists, a coordinator's Patroni retries reading pg_dist_node without pause."""
    return ["CREATE EXTENSION citus",
            f"INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, {sql_literal(superuser)}, "
            f"{sql_literal(authinfo)})"]


def citus_bootstrap_settings(tls: bool) -> tuple[tuple[str, str], ...]:
    """The settings those statements run under: Citus preloaded and, when the cluster's TLS is on, `ssl` on as
    the members run. Else CREATE EXTENSION citus turns ssl on itself in postgresql.auto.conf, which outranks the
    settings of a restore's isolated server (`ssl` off), and that server then looks for the member's certificate
    where the restored copy has none (seen: the restore failed). Without TLS Citus does the same under Patroni's
    own bootstrap, with a self-signed certificate in the data directory, which a copy keeps."""
    return (("shared_preload_libraries", "citus"), *((("ssl", "on"),) if tls else ()))
