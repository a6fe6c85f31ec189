"""Patroni's dynamic configuration under ha, kept by `up` on each group: failsafe_mode on, so that a leader
keeps serving as primary while etcd is unreachable or has lost its quorum, for as long as every member of its
group answers its REST calls (Patroni's DCS failsafe mode); without it Patroni demotes every primary when the
DCS goes. Each group has its own copy of the dynamic configuration (Patroni keys it per Citus group)."""

from __future__ import annotations

from streamctl.backends.base import Backend
from streamctl.config.members import Group, ha_groups
from streamctl.context import ClusterContext
from streamctl.errors import BackendError
from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets
from streamctl.steps import ConfigStep

DCS_STEP = "patroni failsafe mode"


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    return [_failsafe_step(ctx, g) for g in ha_groups(ctx.topology, ctx.store.pinned()) if not g.node.is_external]


def _failsafe_step(ctx: ClusterContext, group: Group) -> ConfigStep:
    ca = ctx.ca_path() if ctx.tls_on else None

    def pending() -> list[str]:
        config = rest.dynamic_config(group.members, ca)
        return [] if config.get("failsafe_mode") is True else ["failsafe_mode on in Patroni's configuration"]

    def apply() -> None:
        status, answer = rest.patch_config(group.members, {"failsafe_mode": True},
                                           ha_secrets(ctx.store.root)["rest_password"], ca)
        if status != 200:
            raise BackendError(f"Patroni refused to turn failsafe_mode on for {group.node.name}: {answer or status}")

    return ConfigStep(group.node.name, DCS_STEP, pending, apply, after=())
