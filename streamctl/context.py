"""A cluster as the rest of the library sees it: topology + state directory + secrets -> connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.config.members import member_addresses
from streamctl.config.model import Engine, ExternalSpec, Node, Role, Topology, postgres_settings
from streamctl.engines import mongo as mongo_engine
from streamctl.engines import postgres as pg_engine
from streamctl.engines import redis as redis_engine
from streamctl.engines.tls import CA
from streamctl.errors import BackendError, NotFoundError
from streamctl.names import GATEWAY_USER, MONGO_APP_USER, MONGO_ROOT_USER
from streamctl.ownership import Ownership
from streamctl.ownership import load as load_ownership
from streamctl.pgconn import (
    KeptConnections,
    NodeConnection,
    NodeCursor,
    PrivilegeError,
    external_conninfo,
    external_endpoint,
    session_params,
)
from streamctl.state import Endpoint, StateStore, cluster_dir
from streamctl.tls.material import ClusterTls

TLS_BACKENDS = ("local", "docker", "swarm", "auto")

if TYPE_CHECKING:
    import psycopg
    import redis as redis_lib
    from pymongo import MongoClient


@dataclass
class ClusterContext:
    """Everything needed to reach a provisioned cluster; built by the CLI from -f and --state-dir."""

    topology: Topology
    store: StateStore
    topology_path: Path | None = None
    adopt: bool = False  # `up --adopt`: take over nodes another state directory's instance id is on
    _secrets: dict[str, str] | None = field(default=None, init=False, repr=False)
    _kept: KeptConnections | None = field(default=None, init=False, repr=False)

    @classmethod
    def build(cls, topology: Topology, topology_path: Path | None = None,
              state_dir: str | Path | None = None) -> ClusterContext:
        base = topology_path.parent if topology_path else Path.cwd()
        return cls(topology, StateStore(cluster_dir(topology, base, state_dir)), topology_path)

    @property
    def secrets(self) -> dict[str, str]:
        """The cluster's secrets, read once (raises NotFoundError before the first `up`)."""
        if self._secrets is None:
            self._secrets = self.store.secrets(self.topology)
        return self._secrets

    def reread_secrets(self) -> None:
        """After a secret was stored anew (rotate-secrets): the next use reads the new values."""
        self._secrets = None

    def create_secrets(self) -> None:
        """Generate (and store, 0600) what the first `up` needs; from now on this context uses them."""
        self._secrets = self.store.secrets(self.topology, create=True)

    @cached_property
    def ownership(self) -> Ownership:
        """This state directory's instance id and what it may take over (read once; see ownership.py)."""
        return load_ownership(self.store, self.adopt)

    @cached_property
    def tls(self) -> ClusterTls:
        base = self.topology_path.parent.absolute() if self.topology_path else Path.cwd()
        return ClusterTls(self.topology, self.store.root, base)

    @property
    def tls_on(self) -> bool:
        return self.topology.tls.enabled

    def ca_path(self, client: str | None = None) -> str:
        """The CA certificate a client verifies servers with: streamctl's own copy, or (client=NODE) the copy
        inside that node's server, for the connections it makes itself (subscriptions, FDW, Citus)."""
        if client is None:
            return str(self.tls.ca_file)
        tls_dir = self.endpoint(client).tls_dir
        if not tls_dir:
            raise NotFoundError(f"no TLS directory is recorded for {client}", hint="run `streamctl up` again")
        return f"{tls_dir}/{CA}"

    def managed_tls(self, name: str) -> bool:
        """True when the cluster's own TLS covers the node: on, and not an external node (those bring their own
        settings); local, Docker and Swarm nodes all get the cluster's certificates."""
        node = self.topology.node(name)
        if not self.tls_on or (node is not None and node.is_external):
            return False
        recorded = self.store.endpoints().get(name)
        backend = recorded.backend if recorded is not None else self.topology.backend
        return backend in TLS_BACKENDS

    def pg_ssl(self, client: str | None = None, target: str | None = None) -> dict[str, str]:
        """libpq parameters for a connection to `target` (from streamctl, or from node `client`): verify-full
        against the cluster CA when the cluster's TLS covers both ends."""
        ends = [e for e in (target, client) if e is not None]
        if not ends or not all(self.managed_tls(e) for e in ends):
            return {}
        return pg_engine.verify_full(self.ca_path(client))

    def node(self, name: str) -> Node:
        node = self.topology.node(name)
        if node is None:
            known = ", ".join(n.name for n in self.topology.nodes())
            raise NotFoundError(f"unknown node {name!r}", hint=f"known nodes: {known}")
        return node

    def endpoint(self, name: str) -> Endpoint:
        """Where a node is: an external node's follows from the topology alone, no `up` needed."""
        node = self.topology.node(name)
        if node is not None and node.is_external:
            return external_endpoint(node)
        return self.store.endpoint(name)

    def endpoints(self) -> dict[str, Endpoint]:
        """Every known node's endpoint: recorded ones plus the external nodes of the topology."""
        out = self.store.endpoints()
        out.update({n.name: external_endpoint(n) for n in self.topology.nodes() if n.is_external})
        return out

    def orphans(self) -> list[Node]:
        """Nodes an earlier `up` made (the state knows them) that the topology no longer has, rebuilt from
        their recorded endpoints so a backend can stop or remove them: like compose's orphan containers."""
        known = {n.name for n in self.topology.nodes()}
        return [orphan_node(self.topology, ep) for name, ep in sorted(self.store.endpoints().items())
                if name not in known]

    def first(self, role: Role) -> Node | None:
        nodes = self.topology.nodes_by_role(role)
        return nodes[0] if nodes else None

    # -- PostgreSQL -------------------------------------------------------------------------------
    def gateway_conninfo(self, name: str, dbname: str | None = None, connect_timeout: int = 5,
                         application_name: str = "streamctl") -> str:
        """As the gateway's least-privilege role, not the superuser; on an external node, as the role the
        topology gives for it (the operator's choice: make it a read-only one)."""
        node = self.topology.node(name)
        if node is not None and node.is_external:
            return self.pg_conninfo(name, dbname, connect_timeout=connect_timeout,
                                    application_name=application_name)
        return self.pg_conninfo(name, dbname, GATEWAY_USER, self.secrets["gateway_password"],
                                connect_timeout=connect_timeout, application_name=application_name)

    def pg_uri(self, name: str, dbname: str | None = None, user: str | None = None,
               password: str | None = None) -> str:
        """The node's URI with credentials, database and TLS parameters (what `streamctl url` prints)."""
        ep = self.endpoint(name)
        user = user or self.topology.pg_user
        if password is None:
            password = self.secrets["postgres_password"]
        ssl = self.pg_ssl(target=name)  # TLS on: sslmode=verify-full and the cluster CA, usable as printed
        addresses = member_addresses(self.topology, name, self.store.pinned()) or [(ep.host, ep.port)]  # HA: its leader
        return pg_engine.leader_uri(addresses, dbname or ep.database or "postgres", user, password, ssl)

    def pg_conninfo(self, name: str, dbname: str | None = None, user: str | None = None,
                    password: str | None = None, connect_timeout: int = 5,
                    application_name: str = "streamctl") -> str:
        """The URI plus the options streamctl connects with; an external node's libpq keywords (TLS settings
        passed through, its password only in memory)."""
        node = self.topology.node(name)
        if node is not None and node.external is not None and user is None:
            return external_conninfo(node, self.topology.pg_user, dbname, connect_timeout=connect_timeout,
                                     application_name=application_name)
        ep = self.endpoint(name)
        if password is None:
            password = self.secrets["postgres_password"]
        params = {**self.pg_ssl(target=name), "connect_timeout": connect_timeout,
                  "application_name": application_name, **session_params()}
        addresses = member_addresses(self.topology, name, self.store.pinned()) or [(ep.host, ep.port)]  # HA: its leader
        return pg_engine.leader_uri(addresses, dbname or ep.database or "postgres", user or self.topology.pg_user,
                                    password, params)

    @contextmanager
    def kept_connections(self) -> Iterator[None]:
        """Inside: `with pg_connect(...)` hands plain autocommit connections back for the next user
        (see pgconn.KeptConnections); all are closed on the way out."""
        self._kept = KeptConnections()
        try:
            yield
        finally:
            kept, self._kept = self._kept, None
            kept.close()

    def pg_connect(self, name: str, dbname: str | None = None, autocommit: bool = True,
                   **kwargs: Any) -> psycopg.Connection[Any]:
        import psycopg

        node = self.topology.node(name)
        external = node is not None and node.is_external
        conninfo = self.pg_conninfo(name, dbname)
        kept = self._kept if autocommit and not kwargs else None
        if kept is not None:
            again = kept.take(conninfo)
            if again is not None:
                return again
        try:
            try:
                conn = NodeConnection.connect(conninfo, autocommit=autocommit, cursor_factory=NodeCursor, **kwargs)
            except psycopg.OperationalError as exc:
                # Mid-rotation of postgres_password a node may still have the applied (old) password.
                others = [] if external or not auth_failed(exc) else self.login_passwords("postgres_password")[1:]
                conn = _first_login([self.pg_conninfo(name, dbname, password=p) for p in others], exc,
                                    autocommit=autocommit, cursor_factory=NodeCursor, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PrivilegeError(name, _first_line(exc)) from None
        except psycopg.OperationalError as exc:
            hint = (f"{name} is external: check its host, port, user, password and TLS settings in the "
                    "topology" if external else "is the cluster up? try `streamctl status`")
            raise BackendError(f"cannot connect to {name}: {_first_line(exc)}", hint=hint) from None
        conn.node_name = name
        if kept is not None:
            conn.kept_by, conn.kept_key = kept, conninfo
        return conn

    def login_passwords(self, key: str) -> list[str]:
        """The passwords a login for secret `key` may need: the wanted one first, then (mid-rotation) the
        applied one and any a half-done rotation may have given a node."""
        return self.store.login_candidates(key, self.secrets[key])

    # -- Redis ------------------------------------------------------------------------------------
    def redis_password(self) -> str:
        node = self.topology.node(self.topology.redis.name)
        if node is not None and node.external is not None:
            return node.external.password or ""
        return self.secrets["redis_password"]

    def redis_url(self, with_ca: bool = False) -> str:
        """rediss:// (TLS) when the cluster's TLS covers Redis; redis_ssl() gives the client the CA to verify
        with (or, with_ca, the URL carries it as redis-py's query parameters)."""
        ep = self.endpoint(self.topology.redis.name)
        tls = self.managed_tls(self.topology.redis.name)
        ca = self.ca_path() if with_ca and tls else None
        return redis_engine.url(ep.host, ep.port, self.redis_password(), tls, ca)

    def redis_ca(self) -> str | None:
        """The CA file Redis clients verify with, or None when the cluster's TLS does not cover Redis."""
        return self.ca_path() if self.managed_tls(self.topology.redis.name) else None

    def redis_ssl(self) -> dict[str, Any]:
        """redis-py keyword arguments: verify the server's certificate and host name against the cluster CA."""
        if not self.managed_tls(self.topology.redis.name):
            return {}
        return {"ssl_ca_certs": self.ca_path(), "ssl_cert_reqs": "required", "ssl_check_hostname": True}

    def redis(self) -> redis_lib.Redis:
        import redis as redis_lib

        return redis_lib.Redis.from_url(self.redis_url(), decode_responses=True, socket_timeout=10,
                                        socket_connect_timeout=5, socket_keepalive=True, **self.redis_ssl())

    # -- MongoDB ----------------------------------------------------------------------------------
    def mongo_uri(self, admin: bool = False) -> str:
        ep = self.endpoint(self.topology.mongo.name)
        node = self.topology.node(self.topology.mongo.name)
        if node is not None and node.external is not None:
            ext = node.external
            return mongo_engine.uri(ep.host, ep.port, ext.user, ext.password, self.topology.mongo.database,
                                    timeouts=True, tls=ext.sslmode in ("require", "verify-ca", "verify-full"))
        if admin:
            user, pw, auth_db = MONGO_ROOT_USER, self.secrets["mongo_password"], "admin"
        else:
            user, pw, auth_db = MONGO_APP_USER, self.secrets["mongo_app_password"], self.topology.mongo.database
        ca = self.ca_path() if self.managed_tls(self.topology.mongo.name) else None
        return mongo_engine.uri(ep.host, ep.port, user, pw, auth_db, timeouts=True, ca_file=ca)

    def mongo(self, admin: bool = False) -> MongoClient[Any]:
        from pymongo import MongoClient

        return MongoClient(self.mongo_uri(admin))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def orphan_node(topology: Topology, ep: Endpoint) -> Node:
    """A node the topology no longer declares, as its recorded endpoint describes it (enough to find, stop
    and remove it; an external one is only ever connected to)."""
    role, engine = Role(ep.role), Engine(ep.engine)
    settings = postgres_settings(topology, role) if engine is Engine.POSTGRES else ()
    external = ExternalSpec(host=ep.host, port=ep.port) if ep.backend == "external" else None
    return Node(ep.name, role, engine, "", ep.host, ep.port, f"{ep.name} (no longer in the topology)", ep.database,
                settings, backend=ep.backend, external=external)


def auth_failed(exc: BaseException) -> bool:
    """A server that answered and refused the password (not an unreachable one)."""
    return "password authentication failed" in str(exc)


def _first_login(conninfos: list[str], first_error: Exception, **kwargs: Any) -> NodeConnection:
    """The first of `conninfos` that logs in; else the first error again (it names the wanted password's refusal)."""
    import psycopg

    for conninfo in conninfos:
        try:
            return NodeConnection.connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            if not auth_failed(exc):
                raise
    raise first_error
