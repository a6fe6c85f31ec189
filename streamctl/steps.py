"""The unit of configuration `up` runs inside the nodes: an idempotent step that can say what it would change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

After = tuple[tuple[str, str], ...]  # (node, step name) pairs a step waits for, besides its own node's


@dataclass(frozen=True)
class ConfigStep:
    """One idempotent piece of configuration on one node.

    `pending()` inspects the live node and lists what `apply()` would change (empty: converged);
    it is what makes `up --dry-run` informative and a second `up` a no-op.

    `after` says what the step needs: None (the default) waits for every step listed before it, as a
    barrier; a tuple waits only for the earlier steps on its own node and for the (node, name) pairs it
    names, so independent nodes' work runs at once (see `dependencies`). `in_node_order=False` drops
    the wait for its own node's earlier steps too, for a step that touches nothing they touch.
    """

    node: str
    name: str
    pending: Callable[[], list[str]]
    apply: Callable[[], None]
    after: After | None = None
    in_node_order: bool = True


def dependencies(steps: list[ConfigStep]) -> list[frozenset[int]]:
    """For each step, the indices of the earlier steps that must finish first.

    A barrier step (after=None) waits for everything before it, except the run of same-named steps on
    distinct nodes it belongs to (a database per node: such steps touch only their own node). Other
    steps wait for their node's earlier steps and the named ones. Pairs that name no listed step (a
    concern the topology turns off) are ignored, so order stays the list's and nothing can cycle.
    """
    out: list[frozenset[int]] = []
    run_start = 0
    for i, step in enumerate(steps):
        prev = steps[i - 1] if i else None
        same_run = prev is not None and prev.name == step.name and all(
            s.node != step.node for s in steps[run_start:i])
        if not same_run:
            run_start = i
        if step.after is None:
            out.append(frozenset(range(run_start)))
            continue
        wanted = set(step.after)
        out.append(frozenset(j for j in range(i) if (step.in_node_order and steps[j].node == step.node)
                             or (steps[j].node, steps[j].name) in wanted))
    return out


def without_nodes(steps: list[ConfigStep], skip: set[str]) -> tuple[list[ConfigStep], list[frozenset[int]]]:
    """The steps left when the nodes in `skip` cannot be reached (a lost Swarm host), with their
    dependencies renumbered: the skipped nodes' steps go, and so does every step that names one of them in
    `after` (transitively); a barrier (after=None) only waited for what ran before it, so it stays."""
    needs = dependencies(steps)
    dropped = {i for i, st in enumerate(steps) if st.node in skip}
    # Only what a step names counts: its own node's earlier steps are an order, not a need.
    while more := {i for i, st in enumerate(steps) if i not in dropped and st.after
                   and set(st.after) & {(steps[j].node, steps[j].name) for j in dropped}}:
        dropped |= more
    keep = [i for i in range(len(steps)) if i not in dropped]
    index = {old: new for new, old in enumerate(keep)}
    return [steps[i] for i in keep], [frozenset(index[j] for j in needs[i] if j in index) for i in keep]
