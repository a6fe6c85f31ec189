"""A group under HA whose members must be made again (a changed definition: image, Patroni's configuration,
certificate, binaries) replaced one at a time instead of all at once: its standbys first, each back and
streaming before the next; then, when the leader must be replaced too, a switchover to a standby already
replaced and the old leader last. The group stays led throughout: a write waits for a switchover's pause at
most. A group that is not led with every member streaming (or has no standby) is left to the backend, which
replaces its members at once as before: there is no service to keep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streamctl.config.members import Group, Member
from streamctl.ha import asks, rest
from streamctl.readiness import Readiness

if TYPE_CHECKING:
    from streamctl.context import ClusterContext


def leader_of_settled(group: Group, ca_file: str | None) -> str | None:
    """The group's leader when it leads and every other member streams from it; else None."""
    if len(group.members) < 2:
        return None
    found = rest.settled(rest.group_members(group.members, ca_file), {m.name for m in group.members}, False)
    return found.name if found is not None else None


def _back(member: Member, since: datetime, ca_file: str | None, ready: Callable[[], bool]) -> Callable[[], bool]:
    """The member's own Patroni answers with a PostgreSQL started after `since` that streams (the group's view
    alone would still show the old member for up to ttl seconds), and the group is `ready`."""

    def probe() -> bool:  # raises what is missing: a timeout then says it (Readiness's last probe error)
        state = rest.get(member, "/patroni", ca_file)
        if not isinstance(state, dict):
            raise RuntimeError(f"{member.name}'s REST API answered {state!r}")
        started = state.get("postmaster_start_time")
        if not (isinstance(started, str) and datetime.fromisoformat(started) > since):
            raise RuntimeError(f"{member.name}'s PostgreSQL started {started} ({state.get('state')}), "
                               f"not after {since.isoformat(timespec='seconds')}")
        if state.get("replication_state") != "streaming":
            raise RuntimeError(f"{member.name} is {state.get('role')} ({state.get('state')}), "
                               f"replication {state.get('replication_state')}")
        if not ready():
            raise RuntimeError(f"{member.name} streams; its group is not ready yet (led, every standby "
                               "streaming, a sync standby when synchronous)")
        return True

    return probe


def roll(group: Group, stale: list[Member], replace: Callable[[Member], None], ready: Callable[[], bool],
         password: Callable[[], str], ca_file: str | None, synchronous: bool, timeout: float = 180.0) -> bool:
    """`stale` members replaced one at a time by `replace` (stop the old one, start the new; its data kept),
    standbys first, the leader after a switchover. False, with nothing done, when the group is not settled
    (the caller then replaces them at once)."""
    leader = leader_of_settled(group, ca_file) if stale else None
    if leader is None:
        return False
    names = {m.name for m in stale}
    order = [m for m in group.members if m.name in names and m.name != leader]
    for member in order:
        _replace(group, member, replace, ready, ca_file, timeout)
    if leader in names:
        asks.switchover(group, None, password(), ca_file, synchronous, timeout)
        _replace(group, next(m for m in group.members if m.name == leader), replace, ready, ca_file, timeout)
    return True


def _replace(group: Group, member: Member, replace: Callable[[Member], None], ready: Callable[[], bool],
             ca_file: str | None, timeout: float) -> None:
    since = datetime.now(UTC)
    replace(member)
    Readiness(f"{member.name} made again and streaming in {group.node.name}", _back(member, since, ca_file, ready),
              timeout, interval=0.5, hint=f"see `streamctl status` and `streamctl logs {group.node.name}`").wait()


def roll_group(ctx: ClusterContext, group: Group, stale: list[Member], replace: Callable[[Member], None]) -> bool:
    """`roll` with the cluster's REST password, CA and synchronous mode (a backend's `up` of a group)."""
    from streamctl.backends.base import group_ready
    from streamctl.ha.secrets import ha_secrets

    synchronous = ctx.topology.ha is not None and ctx.topology.ha.synchronous != "off"
    return roll(group, stale, replace, group_ready(ctx, group.members),
                lambda: ha_secrets(ctx.store.root)["rest_password"], ctx.ca_path() if ctx.tls_on else None, synchronous)
