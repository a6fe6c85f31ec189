"""The unit of configuration `up` runs inside the nodes: an idempotent step that can say what it would change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigStep:
    """One idempotent piece of configuration on one node.

    `pending()` inspects the live node and lists what `apply()` would change (empty: converged);
    it is what makes `up --dry-run` informative and a second `up` a no-op.
    """

    node: str
    name: str
    pending: Callable[[], list[str]]
    apply: Callable[[], None]


def step_batches(steps: list[ConfigStep]) -> list[list[ConfigStep]]:
    """Consecutive steps of one name on distinct nodes, as batches that may run at once; order kept.

    Adapters list the same step for each node in a row (a database per node, the gateway role per
    server), and such steps touch only their own node, so nothing orders them among themselves.
    """
    batches: list[list[ConfigStep]] = []
    for step in steps:
        last = batches[-1] if batches else None
        if last and last[0].name == step.name and all(s.node != step.node for s in last):
            last.append(step)
        else:
            batches.append([step])
    return batches
