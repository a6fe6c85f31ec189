"""The plan: a pure list of node actions (create / recreate / start / noop) from topology + observation."""

from __future__ import annotations

from dataclasses import dataclass

from streamctl.backends.base import Action, Backend, Observation, decide
from streamctl.config.model import Node


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
            Action.RECREATE: "definition changed (data kept)",
            Action.START: f"exists but is {obs.state.value}",
            Action.NOOP: "running, up to date",
        }[self.action]


def plan_nodes(nodes: list[Node], observations: dict[str, Observation],
               desired: dict[str, str]) -> list[NodeStep]:
    """Pure: the same inputs always give the same steps."""
    return [NodeStep(n, decide(observations[n.name], desired[n.name]), observations[n.name]) for n in nodes]


def observe_and_plan(backend: Backend, nodes: list[Node]) -> list[NodeStep]:
    observations = {n.name: backend.observe(n) for n in nodes}
    desired = {n.name: backend.desired_fingerprint(n) for n in nodes}
    return plan_nodes(nodes, observations, desired)
