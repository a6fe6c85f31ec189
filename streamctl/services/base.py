"""The contract of a service adapter: given the cluster and its backend, the configuration steps of one
concern, in the order they run (none when the topology turns the concern off)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from streamctl.steps import ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext

__all__ = ["Adapter", "ConfigStep"]


class Adapter(Protocol):
    """One concern `up` configures inside the nodes (a database, replication, the FDW, a store...)."""

    def __call__(self, ctx: ClusterContext, backend: Backend) -> list[ConfigStep]: ...
