"""External backend: nodes that streamctl did not create. It only connects to them: nothing is ever
started, stopped, created or removed, and no file is written on them."""

from __future__ import annotations

import shutil

from streamctl.backends.base import Action, NodeState, Notify, Observation
from streamctl.config.model import Engine, Node
from streamctl.context import ClusterContext
from streamctl.engines import mongo, postgres, redis
from streamctl.errors import PreflightError, RefusedError
from streamctl.pgconn import external_conninfo, external_endpoint
from streamctl.readiness import Readiness
from streamctl.state import Endpoint

# Connection failures that waiting will not cure: report at once, naming the node.
FATAL_CONNECT = ("password authentication failed", "no password supplied", "does not exist",
                 "no pg_hba.conf entry", "certificate", "SSL", "permission denied", "authentication")


class ExternalNodeError(PreflightError):
    """An external node answers but refuses us, or is not what the topology says it is."""


class ExternalBackend:
    """Reaches nodes at the host, port and credentials the topology gives; never changes where they run."""

    name = "external"

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx

    def preflight(self, nodes: list[Node]) -> None:
        missing = [n.name for n in nodes if n.external is None]
        if missing:  # the mixed backend hands us only external nodes; anything else is a bug
            raise PreflightError(f"not external nodes: {', '.join(missing)}")

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Nothing to prepare: an external node is never created or changed."""

    def observe(self, node: Node) -> Observation:
        return Observation(node.name, NodeState.RUNNING, None, f"external at {node.host}:{node.port}")

    def desired_fingerprint(self, node: Node) -> str:
        return "external"

    def apply(self, node: Node, action: Action) -> None:
        if action is not Action.NOOP:
            raise RefusedError(f"{node.name} is external: streamctl never {action.value}s it",
                               hint="start it where it runs, then run `streamctl up` again")

    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        """Answers a real query; a refusal (password, missing database or role, TLS) fails at once."""
        ep = self.endpoint(node)
        if node.engine is Engine.POSTGRES:
            in_db = postgres.probe(external_conninfo(node, self.ctx.topology.pg_user))
            in_postgres = postgres.probe(external_conninfo(node, self.ctx.topology.pg_user, "postgres"))

            def inner() -> bool:  # a missing database is a difference `up --configure` fixes, not a refusal
                try:
                    return in_db()
                except Exception as exc:
                    if "database" in str(exc) and "does not exist" in str(exc):
                        return in_postgres()
                    raise
        elif node.engine is Engine.REDIS:
            inner = redis.probe(ep.host, ep.port, self.ctx.redis_password() or None)
        else:
            inner = mongo.probe(self.ctx.mongo_uri())

        def probe() -> bool:
            try:
                return inner()
            except Exception as exc:
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if any(marker.lower() in text.lower() for marker in FATAL_CONNECT):
                    raise ExternalNodeError(f"external node {node.name} ({node.host}:{node.port}) refused "
                                            f"the connection: {text}",
                                            hint=f"check {node.yaml_path}: host, port, user, password "
                                                 "(${VAR}) and sslmode") from None
                raise

        return Readiness(f"external node {node.name} ({node.host}:{node.port})", probe, min(timeout, 15.0),
                         interval=0.5, hint=f"is {node.name} running at {node.host}:{node.port}? streamctl "
                                            "does not start external nodes", give_up=(ExternalNodeError,))

    def stop(self, node: Node) -> None:
        raise _refuse_down([node.name])

    def remove(self, node: Node, volumes: bool) -> None:
        raise _refuse_down([node.name])

    def teardown(self, volumes: bool) -> None:
        return None

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        return []  # the server's log is where it runs, not here

    def endpoint(self, node: Node) -> Endpoint:
        return external_endpoint(node)

    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        raise RefusedError(f"{node.name} is external: streamctl does not write {name} on it",
                           hint="its administrator manages its configuration files")

    def source_address(self, node: Node) -> str:
        return node.citus_address[0] if node.citus_address else node.host

    def psql_argv(self, node: Node, user: str, password: str, database: str,
                  args: list[str]) -> tuple[list[str], dict[str, str]]:
        ext = node.external
        assert ext is not None
        env = {"PGSSLMODE": ext.sslmode or "", "PGSSLROOTCERT": ext.sslrootcert or ""}
        if ext.password:
            env["PGPASSWORD"] = ext.password
        exe = shutil.which("psql") or "psql"
        return ([exe, "-h", node.host, "-p", str(node.port), "-U", ext.user or user, "-d", database, *args],
                {k: v for k, v in env.items() if v})


def _refuse_down(names: list[str]) -> RefusedError:
    return RefusedError(f"refusing to stop or remove external node(s) {', '.join(names)}: streamctl did not "
                        "create them", hint="stop them where they run; `streamctl down --skip-external` "
                                            "takes down only the nodes streamctl provisioned")


def refuse_down(names: list[str]) -> RefusedError:
    """The error `down` gives when the topology has external nodes (exit code 10)."""
    return _refuse_down(names)
