"""What the Docker and Swarm backends share: the cluster they run, where their progress goes, and the
engine's client, connected on first use (an unreachable engine is a PreflightError)."""

from __future__ import annotations

import threading
from typing import Any

from streamctl.backends.base import Action, fingerprint
from streamctl.backends.docker.errors import connect
from streamctl.config.model import Node, Topology
from streamctl.context import ClusterContext
from streamctl.events import Progress
from streamctl.pgconn import write_data_file
from streamctl.tls.material import NodeTls, node_names


class EngineBackend:
    """The base of DockerBackend and SwarmBackend; each gives its own `spec` of a node."""

    def __init__(self, ctx: ClusterContext, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.topology: Topology = ctx.topology
        self.progress: Progress = progress or (lambda _node, _message: None)  # the library never prints
        self._client: Any = None
        self._client_lock = threading.Lock()  # status observes nodes from several threads at once
        self._lock = threading.Lock()  # the cluster-wide objects (network, secrets) must not race between nodes

    @property
    def client(self) -> Any:
        """The engine's client, connected on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        return connect()

    def spec(self, node: Node, issue: bool = False) -> Any:
        raise NotImplementedError

    def desired_fingerprint(self, node: Node) -> str:
        return fingerprint(self.spec(node).definition())

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, node: Node, action: Action) -> None:
        """START: the node's container or service, found, is started; CREATE and RECREATE: it is launched
        from its spec (`_launch`, replacing what is found but keeping its volume)."""
        if action is Action.NOOP:
            return
        found = self._find(node)
        if action is Action.START and found is not None:
            self._start(found)
        else:
            self._launch(node, found)

    def _find(self, node: Node) -> Any | None:
        raise NotImplementedError

    def _start(self, found: Any) -> None:
        raise NotImplementedError

    def _launch(self, node: Node, found: Any | None) -> None:
        raise NotImplementedError

    # -- TLS --------------------------------------------------------------------------------------
    def tls_covers(self, node: Node) -> bool:
        """Whether the node's server gets the cluster's certificates."""
        return self.ctx.tls_on

    def tls_names(self, node: Node) -> set[str]:
        """What the node's certificate covers: its names (network alias, container), loopback, its bind."""
        return node_names(self.topology, node)

    def _tls(self, node: Node, issue: bool) -> NodeTls | None:
        """The node's certificate; with issue=True (re)issued first when it must be (only `apply` does)."""
        if not self.tls_covers(node):
            return None
        if issue:
            return self.ctx.tls.ensure(node.name, self.tls_names(node))
        # Before issuing, a stand-in whose fingerprint differs from any real one: the plan says it changes.
        return self.ctx.tls.current(node.name, self.tls_names(node)) or NodeTls(b"", b"to be issued", b"")

    # -- PostgreSQL's files -----------------------------------------------------------------------
    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        """Through SQL (COPY ... TO a server file): the server writes it as its own user, in milliseconds,
        wherever its task runs, where a copy through the engine mounts the container's filesystem each time."""
        with self.ctx.pg_connect(node.name, "postgres") as conn:
            write_data_file(conn, node.name, name, content)
