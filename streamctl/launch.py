"""`up`'s nodes launched: the ports they need free first, then every node that needs it created, recreated
or started, and waited for until ready, all at once. Emits events, never prints."""

from __future__ import annotations

import socket
import time

from streamctl import parallel
from streamctl.backends.base import Action, Backend, NodeState
from streamctl.config.members import ha_groups
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError, StepError, StreamctlError
from streamctl.events import Emit, Event, EventKind
from streamctl.plan import NodeStep


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def check_ports(ctx: ClusterContext, steps: list[NodeStep]) -> None:
    """The ports of the nodes to launch are free (an orphan holding one is named, with the way out)."""
    orphans = {(o.host, o.port): o.name for o in ctx.orphans()}

    def holder(host: str, port: int) -> str:
        name = orphans.get((host, port))
        return f"orphan {name} (no longer in the topology)" if name else "another program"

    members = {g.node.name: g.members for g in ha_groups(ctx.topology)}  # under HA: each member's own ports

    def ports(node: Node) -> list[tuple[str, int]]:
        own = [(f"{node.yaml_path}.port", node.port)]
        return own + [(f"{m.port_path} ({m.name}'s)", m.port) for m in members.get(node.name, ())[1:]] + \
            [(f"{m.rest_path} ({m.name}'s REST API)", m.rest_port) for m in members.get(node.name, ())]

    busy = [f"{path}: {s.node.host}:{port} is already in use by {holder(s.node.host, port)}"
            for s in steps if s.observation.state in (NodeState.MISSING, NodeState.STOPPED) and not s.node.is_external
            for path, port in ports(s.node) if _port_in_use(s.node.host, port)]
    if busy:
        hint = "stop what holds them, or change the ports in the topology"
        if any("orphan" in b for b in busy):
            hint = "`streamctl up --remove-orphans` removes the orphans first; or " + hint
        raise PreflightError("ports needed by the topology are taken", details=busy, hint=hint)


def converge_nodes(backend: Backend, steps: list[NodeStep], emit: Emit, timeout: float) -> dict[str, float]:
    """Launch every node that needs it and wait for all of them, in parallel: node -> seconds to ready.
    Every node has its turn; then the first failure is raised, with the others in its details."""

    def one(step: NodeStep) -> float:
        name = step.node.name
        t0 = time.monotonic()
        if step.action is not Action.NOOP:
            emit(Event("begin", name, step.action.value, step.reason))
            try:
                backend.apply(step.node, step.action)
            except StreamctlError as exc:
                raise StepError(f"{name}: {step.action.value} failed: {exc.message}", hint=exc.hint,
                                details=exc.details) from exc
        backend.readiness(step.node, timeout).wait()
        seconds = time.monotonic() - t0
        kind: EventKind = "noop" if step.action is Action.NOOP else "done"
        emit(Event(kind, name, step.action.value, "ready", seconds))
        return seconds

    errors: list[StreamctlError] = []
    ready: dict[str, float] = {}
    for outcome in parallel.each(steps, one):
        step = outcome.item
        if isinstance(outcome.error, StreamctlError):
            emit(Event("fail", step.node.name, step.action.value, outcome.error.message))
            errors.append(outcome.error)
        else:
            ready[step.node.name] = outcome.get()
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.details = [*first.details, *(f"also: {e.message}" for e in errors[1:])]
        raise first
    return ready
