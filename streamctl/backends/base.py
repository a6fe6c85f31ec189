"""The one interface every backend implements: where a node runs (Docker container or local process)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from streamctl.config.model import Node
from streamctl.readiness import Probe, Readiness, node_probe
from streamctl.state import Endpoint

if TYPE_CHECKING:
    from streamctl.config.members import Member
    from streamctl.context import ClusterContext


class NodeState(StrEnum):
    MISSING = "missing"  # never created (or removed)
    STOPPED = "stopped"  # created, data kept, not running
    DEGRADED = "degraded"  # some of its processes run, not all (a group under HA with a member down)
    RUNNING = "running"


class Action(StrEnum):
    CREATE = "create"
    RECREATE = "recreate"  # definition changed: replace the process/container, keep the data
    START = "start"
    NOOP = "noop"


Notify = Callable[[str, str], None]  # (node or "*", message): what a backend reports while preparing


@dataclass(frozen=True)
class Observation:
    node: str
    state: NodeState
    fingerprint: str | None = None  # of the definition it was created from
    detail: str = ""
    takeover: str = ""  # whose node `up` takes over (legacy or `--adopt`): it is recreated with our labels


def fingerprint(definition: Any) -> str:
    """A stable short hash of a node's definition (image, command, environment...)."""
    blob = json.dumps(definition, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


LEGACY_FORMS = (1, 2)  # under HA: 1 with the bootstrap's PostgreSQL parameters, 2 with Patroni's passwords too


def made_as(recorded: str | None, definition: Callable[[int], Any],
            forms: tuple[int, ...] = LEGACY_FORMS) -> str | None:
    """The definition a recorded fingerprint stands for: one recorded from an older form of the definition
    (`definition(k)` for k in `forms`; under HA, with Patroni's own passwords or the bootstrap's PostgreSQL
    parameters in it, before they were left out) counts as today's (`definition(0)`) while they are the same,
    so an upgrade restarts nothing."""
    if recorded is not None and any(recorded == fingerprint(definition(k)) for k in forms):
        return fingerprint(definition(0))
    return recorded


@runtime_checkable
class Backend(Protocol):
    """Where nodes run. Methods never print; failures raise StreamctlError subclasses."""

    name: str

    def preflight(self, nodes: list[Node]) -> None:
        """Raise PreflightError naming anything missing (binary, extension, engine), before any change."""

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Before any node is created or changed: what all the changes need (images present, data
        compatible, directories placed); raises without changing any node."""

    def observe(self, node: Node) -> Observation: ...

    def desired_fingerprint(self, node: Node) -> str: ...

    def apply(self, node: Node, action: Action) -> None:
        """Create, recreate or start the node; returns once it is launched (readiness is separate)."""

    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness: ...

    def stop(self, node: Node) -> None: ...

    def remove(self, node: Node, volumes: bool) -> None:
        """Stop and remove the node; with volumes=True its data goes too."""

    def teardown(self, volumes: bool) -> None:
        """Remove cluster-wide resources (network...) once every node is removed."""

    def logs(self, node: Node, tail: int = 50) -> list[str]: ...

    def endpoint(self, node: Node) -> Endpoint: ...

    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        """Write a file into a PostgreSQL node's data directory (e.g. pg_hba.conf), owned by the server."""

    def source_address(self, node: Node) -> str:
        """The address this node's outgoing connections come from, as the other nodes see it (for
        pg_hba rules): 127.0.0.1 for local processes, the container's IP on the cluster network."""
        ...

    def psql_argv(self, node: Node, user: str, password: str, database: str, args: list[str]) -> tuple[
            list[str], dict[str, str]]:
        """argv and extra environment to run psql against the node."""
        ...


@runtime_checkable
class GroupReleaser(Protocol):
    """A backend running HA groups: one leaving Citus is released first (see `retire`)."""

    def release_group(self, node: Node) -> None:
        """Stop what manages the group's members (their servers go on running) and forget its DCS record."""


def node_readiness(backend: Backend, ctx: ClusterContext, node: Node, timeout: float, where: str, *, tls: bool,
                   alive: Callable[[], bool], interval: float = 0.05, hint: str = "",
                   also: Probe | None = None) -> Readiness:
    """A node's readiness as every backend judges it: the engine's own probe at the node's endpoint, with the
    cluster's secrets (and the values a pending rotation may still leave), verifying the server against the
    cluster's CA when `tls`; its last log lines on timeout, and `alive` to fail fast. `where`: how it runs,
    before its address ("on ", "in container NAME, "); `hint` follows the one to read its logs; `also`:
    the backend's own verdict besides the engine's (Swarm's task state)."""
    ep = backend.endpoint(node)
    answers = node_probe(node, ep.host, ep.port, ctx.topology.pg_user, ctx.store.known_secrets(ctx.topology),
                         ctx.ca_path() if tls else None, ctx.store.login_fallbacks(ctx.topology))

    def probe() -> bool:
        return answers() and (also is None or also())

    return Readiness(f"{node.name} ({node.engine.value} {where}{ep.host}:{ep.port})", probe, timeout,
                     interval=interval, logs=lambda: backend.logs(node, 20),
                     hint=f"see `streamctl logs {node.name}`{hint}", alive=alive)


def group_ready(ctx: ClusterContext, members: tuple[Member, ...]) -> Callable[[], bool]:
    """Under HA, a group's own verdict for its node's readiness: led, every standby streaming and, when
    synchronous, one confirming commits (Patroni's leader is asked to pick it at once: `rest.ready`)."""
    from streamctl.ha import rest
    from streamctl.ha.secrets import ha_secrets

    ca = ctx.ca_path() if ctx.tls_on else None
    sync = ctx.topology.ha is not None and ctx.topology.ha.synchronous != "off"
    return lambda: rest.ready(members, ca, sync, lambda: ha_secrets(ctx.store.root)["rest_password"])
