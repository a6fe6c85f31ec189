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
