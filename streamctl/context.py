"""A cluster as the rest of the library sees it: topology + state directory + secrets -> connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from streamctl.config.model import Node, Role, Topology
from streamctl.errors import BackendError, NotFoundError
from streamctl.names import GATEWAY_USER, MONGO_APP_USER, MONGO_ROOT_USER
from streamctl.pgconn import NodeConnection, NodeCursor, PrivilegeError, external_conninfo, external_endpoint
from streamctl.state import Endpoint, StateStore, cluster_dir

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
    _secrets: dict[str, str] | None = field(default=None, init=False, repr=False)

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

    def create_secrets(self) -> None:
        """Generate (and store, 0600) what the first `up` needs; from now on this context uses them."""
        self._secrets = self.store.secrets(self.topology, create=True)

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
        """The node's URI with credentials and database, no options (what `streamctl url` prints)."""
        ep = self.endpoint(name)
        user = user or self.topology.pg_user
        if password is None:
            password = self.secrets["postgres_password"]
        db = dbname or ep.database or "postgres"
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{ep.host}:{ep.port}/{quote(db, safe='')}"

    def pg_conninfo(self, name: str, dbname: str | None = None, user: str | None = None,
                    password: str | None = None, connect_timeout: int = 5,
                    application_name: str = "streamctl") -> str:
        """The URI plus the options streamctl connects with; an external node's libpq keywords (TLS settings
        passed through, its password only in memory)."""
        node = self.topology.node(name)
        if node is not None and node.external is not None and user is None:
            from psycopg.conninfo import make_conninfo

            return make_conninfo(external_conninfo(node, self.topology.pg_user, dbname),
                                 connect_timeout=connect_timeout, application_name=application_name)
        query = urlencode({"connect_timeout": connect_timeout, "application_name": application_name})
        return f"{self.pg_uri(name, dbname, user, password)}?{query}"

    def pg_connect(self, name: str, dbname: str | None = None, autocommit: bool = True,
                   **kwargs: Any) -> psycopg.Connection[Any]:
        import psycopg

        node = self.topology.node(name)
        external = node is not None and node.is_external
        try:
            conn = NodeConnection.connect(self.pg_conninfo(name, dbname), autocommit=autocommit,
                                          cursor_factory=NodeCursor, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PrivilegeError(name, _first_line(exc)) from None
        except psycopg.OperationalError as exc:
            hint = (f"{name} is external: check its host, port, user, password and TLS settings in the "
                    "topology" if external else "is the cluster up? try `streamctl status`")
            raise BackendError(f"cannot connect to {name}: {_first_line(exc)}", hint=hint) from None
        conn.node_name = name
        return conn

    # -- Redis ------------------------------------------------------------------------------------
    def redis_password(self) -> str:
        node = self.topology.node(self.topology.redis.name)
        if node is not None and node.external is not None:
            return node.external.password or ""
        return self.secrets["redis_password"]

    def redis_url(self) -> str:
        ep = self.endpoint(self.topology.redis.name)
        return f"redis://:{quote(self.redis_password(), safe='')}@{ep.host}:{ep.port}/0"

    def redis(self) -> redis_lib.Redis:
        import redis as redis_lib

        return redis_lib.Redis.from_url(self.redis_url(), decode_responses=True, socket_timeout=10)

    # -- MongoDB ----------------------------------------------------------------------------------
    def mongo_uri(self, admin: bool = False) -> str:
        ep = self.endpoint(self.topology.mongo.name)
        node = self.topology.node(self.topology.mongo.name)
        if node is not None and node.external is not None:
            ext = node.external
            cred = f"{quote(ext.user, safe='')}:{quote(ext.password or '', safe='')}@" if ext.user else ""
            tls = "&tls=true" if ext.sslmode in ("require", "verify-ca", "verify-full") else ""
            return (f"mongodb://{cred}{ep.host}:{ep.port}/?authSource={self.topology.mongo.database}"
                    f"&directConnection=true&serverSelectionTimeoutMS=5000{tls}")
        if admin:
            user, pw, auth_db = MONGO_ROOT_USER, self.secrets["mongo_password"], "admin"
        else:
            user, pw, auth_db = MONGO_APP_USER, self.secrets["mongo_app_password"], self.topology.mongo.database
        return (f"mongodb://{quote(user, safe='')}:{quote(pw, safe='')}@{ep.host}:{ep.port}/"
                f"?authSource={auth_db}&directConnection=true&serverSelectionTimeoutMS=5000")

    def mongo(self, admin: bool = False) -> MongoClient[Any]:
        from pymongo import MongoClient

        return MongoClient(self.mongo_uri(admin))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
