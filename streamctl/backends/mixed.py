"""One cluster over several backends (e.g. external PostgreSQL nodes, a local Redis): every call goes to
the backend that runs the node. The only place that knows a cluster may mix backends."""

from __future__ import annotations

from streamctl.backends.base import Action, Backend, Notify, Observation
from streamctl.config.model import Node
from streamctl.readiness import Readiness
from streamctl.state import Endpoint


class MixedBackend:
    """Dispatches per node; `name` is the provisioning backend's (what `auto` reuses next time)."""

    def __init__(self, backends: dict[str, Backend], choice: dict[str, str], default: str) -> None:
        self.backends = backends
        self.choice = choice  # node name -> backend name
        self.name = default

    def for_node(self, node: Node) -> Backend:
        # A node the topology no longer has (an orphan) names its backend itself.
        return self.backends[self.choice.get(node.name) or node.backend or self.name]

    def preflight(self, nodes: list[Node]) -> None:
        for name, backend in self.backends.items():
            mine = [n for n in nodes if self.choice.get(n.name) == name]
            if mine:
                backend.preflight(mine)

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        for name, backend in self.backends.items():
            backend.prepare([(n, a) for n, a in changes if self.choice.get(n.name) == name], notify)

    def observe(self, node: Node) -> Observation:
        return self.for_node(node).observe(node)

    def desired_fingerprint(self, node: Node) -> str:
        return self.for_node(node).desired_fingerprint(node)

    def apply(self, node: Node, action: Action) -> None:
        self.for_node(node).apply(node, action)

    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        return self.for_node(node).readiness(node, timeout)

    def stop(self, node: Node) -> None:
        self.for_node(node).stop(node)

    def remove(self, node: Node, volumes: bool) -> None:
        self.for_node(node).remove(node, volumes)

    def teardown(self, volumes: bool) -> None:
        for backend in self.backends.values():
            backend.teardown(volumes)

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        return self.for_node(node).logs(node, tail)

    def endpoint(self, node: Node) -> Endpoint:
        return self.for_node(node).endpoint(node)

    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        self.for_node(node).write_pg_file(node, name, content)

    def source_address(self, node: Node) -> str:
        return self.for_node(node).source_address(node)

    def psql_argv(self, node: Node, user: str, password: str, database: str,
                  args: list[str]) -> tuple[list[str], dict[str, str]]:
        return self.for_node(node).psql_argv(node, user, password, database, args)


def backend_of(backend: Backend, node: Node) -> Backend:
    """The backend that really runs `node` (itself unless `backend` mixes several)."""
    return backend.for_node(node) if isinstance(backend, MixedBackend) else backend


def backend_for(backend: Backend, node: Node) -> Backend | None:
    """The backend that runs `node` among those `backend` holds; None for a node recorded by a backend this
    command does not use (an orphan an earlier `up` made elsewhere)."""
    if isinstance(backend, MixedBackend):
        return backend.backends.get(backend.choice.get(node.name) or node.backend or backend.name)
    return backend if node.backend in (None, backend.name) else None
