"""The plan of `up`: what happens to each node (create / recreate / start / noop), then which configuration
steps are still pending. Built once; `up` executes it, `up --dry-run` shows it, both as text and JSON.
How a plan reads (each row's action and detail) is decided here, and only here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from streamctl.backends.base import Action, Backend, NodeState, Observation
from streamctl.config.model import Node
from streamctl.steps import ConfigStep


def decide(obs: Observation, desired: str) -> Action:
    """The convergence rule, shared by every backend."""
    if obs.state is NodeState.MISSING:
        return Action.CREATE
    if obs.takeover:  # another instance's (or an unlabelled) node: recreated under our id, data kept
        return Action.RECREATE
    if obs.fingerprint is not None and obs.fingerprint != desired:
        return Action.RECREATE
    if obs.state in (NodeState.STOPPED, NodeState.DEGRADED):  # what does not run is started, the rest kept
        return Action.START
    return Action.NOOP


@dataclass(frozen=True)
class NodeStep:
    node: Node
    action: Action
    observation: Observation

    @property
    def reason(self) -> str:
        obs = self.observation
        if self.node.is_external:
            return f"external ({self.node.host}:{self.node.port}): checked, never started or changed"
        return {
            Action.CREATE: "does not exist",
            Action.RECREATE: f"taken over from {obs.takeover} (data kept)" if obs.takeover
            else "definition changed (data kept)",
            Action.START: f"exists but is {obs.state.value}",
            Action.NOOP: "running, up to date",
        }[self.action]


@dataclass(frozen=True)
class PendingConfig:
    """A configuration step and what it would change on the live node (empty: in place)."""

    node: str
    step: str
    changes: list[str]
    check_only: bool = False  # an external node without `up --configure`: reported, never applied


ORPHAN_DETAIL = "no longer in the topology, left as it is: `up --remove-orphans` removes it"
ORPHAN_REMOVE = ("no longer in the topology: removed first (a worker drained and unregistered, a replica's "
                 "subscription and slot dropped), then its data")


@dataclass(frozen=True)
class PlanRow:
    node: str
    action: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "action": self.action, "detail": self.detail}


@dataclass
class Plan:
    """Node steps, then configuration: `configuration` is None while some node is not running (the steps
    look at live nodes, so they can only be listed once every node runs)."""

    cluster: str
    backend: str
    nodes: list[NodeStep]
    configuration: list[PendingConfig] | None = field(default=None)
    differences: list[str] = field(default_factory=list)  # external nodes against the topology
    orphans: list[str] = field(default_factory=list)  # nodes the state knows, the topology no longer has
    remove_orphans: bool = False  # `up --remove-orphans`: they are removed first

    @property
    def all_running(self) -> bool:
        return all(s.observation.state is NodeState.RUNNING for s in self.nodes)

    def rows(self) -> list[PlanRow]:
        out = [PlanRow(s.node.name, "check" if s.node.is_external else s.action.value, s.reason)
               for s in self.nodes]
        out += [PlanRow(name, "remove", ORPHAN_REMOVE) if self.remove_orphans
                else PlanRow(name, "orphan", ORPHAN_DETAIL) for name in self.orphans]
        if self.configuration is None:
            return [*out, PlanRow("*", "configure", "schema, replication, FDW and stores are configured once "
                                                    "the nodes run")]
        out += [PlanRow(d.split(":", 1)[0], "differs", d.split(":", 1)[-1].strip()) for d in self.differences]
        return out + [PlanRow(c.node, "differs" if c.check_only else "configure", "; ".join(c.changes))
                      if c.changes else PlanRow(c.node, "noop", f"{c.step}: up to date")
                      for c in self.configuration]

    def to_json(self) -> list[dict[str, str]]:
        return [r.to_json() for r in self.rows()]


def plan_nodes(nodes: list[Node], observations: dict[str, Observation],
               desired: dict[str, str]) -> list[NodeStep]:
    """Pure: the same inputs always give the same steps."""
    return [NodeStep(n, decide(observations[n.name], desired[n.name]), observations[n.name]) for n in nodes]


def observe_and_plan(backend: Backend, nodes: list[Node]) -> list[NodeStep]:
    observations = {n.name: backend.observe(n) for n in nodes}
    desired = {n.name: backend.desired_fingerprint(n) for n in nodes}
    return plan_nodes(nodes, observations, desired)


def pending_configuration(steps: list[ConfigStep],
                          check_only: Callable[[str], bool] = lambda _node: False) -> list[PendingConfig]:
    """What each configuration step would change, read from the live nodes; a dry run reports what it
    cannot check instead of failing. `check_only(node)`: its changes are reported, not applied."""
    out = []
    for cs in steps:
        try:
            changes = cs.pending()
        except Exception as exc:  # noqa: BLE001 - a dry run reports what it cannot check
            changes = [f"cannot check: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"]
        out.append(PendingConfig(cs.node, cs.name, changes, check_only(cs.node)))
    return out
