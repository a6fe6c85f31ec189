"""Service adapters: what `up` configures inside the nodes once they run, as ordered ConfigSteps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.services.base import ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext


def configuration_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Every configuration step of the platform, in the order they must run."""
    return []
