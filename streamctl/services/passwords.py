"""Giving the engines a new password: where each cluster secret lives, and how each place is changed.

A role's password goes in as a SCRAM-SHA-256 verifier computed here (as psql's \\password does), so the
clear text never reaches a server log; the places that must hold the clear text (a subscription's
connection, a user mapping, Citus's authinfo) are updated through the catalogue commands made for them.
Every function is idempotent: run again after a failure, it finishes what is left.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from streamctl.backends.base import Backend
from streamctl.backends.mixed import backend_of
from streamctl.citus import catalog as citus_catalog
from streamctl.config.members import ha_groups
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.errors import BackendError, RefusedError
from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets, rest_passwords
from streamctl.names import (
    FDW_SERVER,
    FDW_USER,
    GATEWAY_USER,
    HA_REPLICATION_USER,
    HA_REWIND_USER,
    REPLICATION_USER,
    subscription_name,
)
from streamctl.replication import catalog as repl_catalog
from streamctl.services.permanent_slots import wait_replayed
from streamctl.services.postgres import role_exists

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)

Changed = list[str]  # the places changed, for the report ("analytics-primary: role streamctl_replicator")


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677; SASLprep is the identity
    for the ASCII passwords streamctl generates; others go in as clear text, see set_role_password)."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(stored_key).decode()}:{b64(server_key).decode()}")


@contextmanager
def unlogged(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction whose statements the server does not log, not even when one fails (they carry a secret);
    streamctl logs in as a superuser, who may change these settings for its own transaction."""
    with conn.transaction():
        for setting, value in (("log_statement", "none"), ("log_min_duration_statement", "-1"),
                               ("log_min_error_statement", "panic")):
            conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
        yield


def set_role_password(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    """ALTER ROLE ... PASSWORD on this node only (Citus's propagation off: each node is done by us, so a
    half-done run is visible node by node), unlogged."""
    value = scram_verifier(password) if password.isascii() and password.isprintable() else password
    with unlogged(conn):
        conn.execute("SELECT set_config('citus.enable_alter_role_propagation', 'off', true)")
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(value)))


def managed_postgres(ctx: ClusterContext) -> list[Node]:
    """The PostgreSQL nodes streamctl provisioned (external nodes keep the passwords their owner gives)."""
    return [n for n in ctx.topology.nodes() if n.is_postgres and not n.is_external]


def _role_everywhere(ctx: ClusterContext, role: str, password: str, authinfo: bool = False) -> Changed:
    """The role's password on every managed node that has the role; with authinfo, Citus's stored copy too."""
    out: Changed = []
    for node in managed_postgres(ctx):
        with ctx.pg_connect(node.name) as conn:
            if not role_exists(conn, role):
                continue
            set_role_password(conn, role, password)
            out.append(f"{node.name}: role {role}")
            if authinfo and citus_catalog.extension_created(conn) and citus_catalog.authinfo_stored(conn, role):
                with unlogged(conn):
                    citus_catalog.store_authinfo(conn, role, pg_engine.authinfo(password))
                out.append(f"{node.name}: Citus authinfo for {role}")
            wait_replayed(ctx, node.name, "new password", conn)  # libpq stops at a member refusing it
    return out


def ha_refusal(ctx: ClusterContext, backend: Backend, name: str = "postgres_password") -> RefusedError | None:
    """Under HA the superuser's password (`name`), and Patroni's own ones (`ha_passwords`), are also in each
    member's Patroni configuration: rewritten and reloaded on the local and Docker backends (a Swarm member's
    configuration is a Swarm secret, which cannot change)."""
    what = "ha_passwords (Patroni's own passwords)" if name == "ha_passwords" else name
    elsewhere = [g.node.name for g in ha_groups(ctx.topology)
                 if backend_of(backend, g.node).name not in ("local", "docker")]
    if not elsewhere:
        return None
    return RefusedError(f"rotating {what} under ha is built on the local and Docker backends only "
                        f"({', '.join(elsewhere)} run on Swarm, where Patroni's configuration is a Swarm secret "
                        "that cannot change)", hint="name the other secrets to rotate them")


# -- one function per secret ------------------------------------------------------------------------------
def superuser(ctx: ClusterContext, backend: Backend) -> Changed:
    """pg_user's password on every node; each login tries the new password, then the applied one
    (context.pg_connect), so a node already done and a node not yet done both take it."""
    refusal = ha_refusal(ctx, backend)
    if refusal is not None:
        raise refusal
    # Under HA Patroni reads the new password first, while the old one still logs in: its reload queries
    # PostgreSQL on its open session, or a new one with the password it has (a reload after the role's change
    # on a broken session would fail every time). Until the role changes its new sessions are refused, once.
    first = _persist(ctx, backend, managed_postgres(ctx)) + _reload_patroni(ctx) if ha_groups(ctx.topology) else []
    changed = _role_everywhere(ctx, ctx.topology.pg_user, ctx.secrets["postgres_password"], authinfo=True)
    return first + changed + ([] if first else _persist(ctx, backend, managed_postgres(ctx)))


def ha_passwords(ctx: ClusterContext, backend: Backend) -> Changed:
    """Patroni's own passwords (ha-secrets.json: its standbys' replication user, the rewind user, its REST API's
    user): the two roles changed on each group's leader (its standbys replay them), then every member's
    configuration rewritten and reloaded, so a standby's next replication connection, a pg_rewind and the REST
    API take the new values. Open replication connections stay."""
    from streamctl.ha.roles import ensure_patroni_roles

    refusal = ha_refusal(ctx, backend, "ha_passwords")
    if refusal is not None:
        raise refusal
    secrets = ha_secrets(ctx.store.root)
    groups = ha_groups(ctx.topology)
    out: Changed = []
    for g in groups:
        with ctx.pg_connect(g.node.name) as conn:
            ensure_patroni_roles(conn, secrets)
            wait_replayed(ctx, g.node.name, "the new passwords", conn)
        out.append(f"{g.node.name}: roles {HA_REPLICATION_USER}, {HA_REWIND_USER}")
    return out + _persist(ctx, backend, [g.node for g in groups]) + _reload_patroni(ctx)


def _reload_patroni(ctx: ClusterContext) -> Changed:
    """Under HA, once `_persist` has rewritten every member's configuration: each member's Patroni reads it again
    (its REST API's POST /reload, with the REST password it has: mid-rotation the old one), so its own logins
    (its local connection, pg_dist_node updates on the coordinator's leader) use the new superuser password and
    its own users theirs. A member that does not answer stops the rotation."""
    ca = ctx.ca_path() if ctx.tls_on else None
    out: Changed = []
    members = [m for g in ha_groups(ctx.topology) for m in g.members]
    for member in members:
        try:
            for password in rest_passwords(ctx.store.root):
                status, answer = rest.post(member, "/reload", {}, password, ca)
                if status != 401:
                    break
        except OSError as exc:
            raise BackendError(f"Patroni of {member.name} does not answer to reload its configuration: {exc}",
                               hint="`streamctl up` starts the members that do not run") from None
        if status not in (200, 202):
            raise BackendError(f"Patroni of {member.name} refused to reload its configuration: {answer or status}")
        out.append(f"{member.name}: Patroni configuration reloaded")
    asked = int(time.time())  # after the last request
    if members:  # Patroni reloads as its next loop starts, before it reads etcd (dcs_last_seen)
        loop_wait = ctx.topology.ha.loop_wait if ctx.topology.ha else 10
        rest.wait_loops_since(members, asked, ca, 3 * loop_wait + 30, "every Patroni reloading its configuration")
    return out


def replication(ctx: ClusterContext, backend: Backend) -> Changed:
    """The replication role, then each replica's subscription connection (its apply worker reconnects)."""
    from streamctl.services.replication import ReplicationService

    password = ctx.secrets["replication_password"]
    changed = _role_everywhere(ctx, REPLICATION_USER, password)
    if ctx.first(Role.ANALYTICS_PRIMARY) is None:
        return changed
    repl = ReplicationService(ctx, backend)
    for replica in repl.replicas:
        if replica.is_external:
            continue
        name = subscription_name(replica.name)
        with ctx.pg_connect(replica.name) as conn:
            sub = repl_catalog.subscription(conn, name)
            wanted = repl.conninfo(replica.name)
            if sub is not None and sub.conninfo != wanted:
                with unlogged(conn):
                    repl_catalog.set_connection(conn, name, wanted)
                changed.append(f"{replica.name}: subscription {name}")
    return changed


def fdw(ctx: ClusterContext, backend: Backend) -> Changed:
    """The FDW reader role on the node it reads, then every user mapping that logs in as it."""
    password = ctx.secrets["fdw_password"]
    changed = _role_everywhere(ctx, FDW_USER, password)
    coordinator = ctx.first(Role.COORDINATOR)
    if coordinator is None or coordinator.is_external:
        return changed
    with ctx.pg_connect(coordinator.name) as conn:
        rows = conn.execute("SELECT usename, umoptions FROM pg_user_mappings WHERE srvname = %s",
                            (FDW_SERVER,)).fetchall()
        for usename, options in rows:
            opts = dict(o.split("=", 1) for o in options or [])
            if opts.get("user") != FDW_USER or opts.get("password") == password:
                continue
            who = sql.SQL("PUBLIC") if usename == "public" else sql.Identifier(usename)
            verb = sql.SQL("SET" if "password" in opts else "ADD")
            with unlogged(conn):
                conn.execute(sql.SQL("ALTER USER MAPPING FOR {} SERVER {} OPTIONS ({} password {})").format(
                    who, sql.Identifier(FDW_SERVER), verb, sql.Literal(password)))
            changed.append(f"{coordinator.name}: user mapping for {usename}")
    return changed


def gateway(ctx: ClusterContext, backend: Backend) -> Changed:
    """The gateway's role on every node (with Citus, its authinfo for node-to-node connections)."""
    return _role_everywhere(ctx, GATEWAY_USER, ctx.secrets["gateway_password"], authinfo=True)


def redis_password(ctx: ClusterContext, backend: Backend) -> Changed:
    """CONFIG SET requirepass, logged in with whichever password Redis has now; then its configuration
    file (the backend's persist_secrets), so a restart keeps the new one. Open connections stay."""
    import redis as redis_lib

    t = ctx.topology
    node = t.node(t.redis.name)
    if not t.redis.enabled or node is None or node.is_external:
        return []
    ep = ctx.endpoint(node.name)
    client = None
    ssl = ctx.redis_ssl()
    for password in ctx.login_passwords("redis_password"):
        candidate = redis_lib.Redis(host=ep.host, port=ep.port, password=password, socket_timeout=10,
                                    ssl=bool(ssl), **ssl)
        try:
            candidate.ping()
            client = candidate
            break
        except redis_lib.AuthenticationError:
            candidate.close()
    if client is None:
        raise BackendError(f"Redis on {node.name} refused every password streamctl knows for it",
                           hint="set requirepass by hand (redis-cli CONFIG SET requirepass) to the value in the "
                                "state's secrets file, then run the command again")
    try:
        client.config_set("requirepass", ctx.secrets["redis_password"])
    finally:
        client.close()
    return [f"{node.name}: requirepass"] + _persist(ctx, backend, [node])


def mongo(ctx: ClusterContext, backend: Backend) -> Changed:
    """The root and application users: updateUser, logged in with the applied root password (services.mongo)."""
    from streamctl.services.mongo import MongoService

    t = ctx.topology
    node = t.node(t.mongo.name)
    if not t.mongo.enabled or node is None or node.is_external:
        return []
    step = MongoService(ctx, node).users_step()
    pending = step.pending()
    if pending:
        step.apply()
    return [f"{node.name}: {p}" for p in pending] + _persist(ctx, backend, [node])


def _persist(ctx: ClusterContext, backend: Backend, nodes: list[Node]) -> Changed:
    """Files inside the nodes that hold a secret (Docker: the password files, Redis's configuration)."""
    out: Changed = []
    for node in nodes:
        persist: Callable[[Node], None] | None = getattr(backend_of(backend, node), "persist_secrets", None)
        if persist is not None:
            persist(node)
            out.append(f"{node.name}: files holding the secret")
    return out


APPLY: dict[str, Callable[[ClusterContext, Backend], Changed]] = {
    "postgres_password": superuser,
    "replication_password": replication,
    "fdw_password": fdw,
    "gateway_password": gateway,
    "redis_password": redis_password,
    "mongo_password": mongo,
    "mongo_app_password": mongo,
    "ha_passwords": ha_passwords,
}
