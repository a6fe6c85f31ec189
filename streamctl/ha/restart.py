"""A group's members taking a change of its dynamic configuration: each Patroni applies it at its next loop
(reloading PostgreSQL); a parameter that needs a restart leaves the member `pending_restart`, and its Patroni
restarts it when asked (`POST /restart` with `restart_pending`), the standbys first and the leader last, as
`patronictl restart --pending` does. Patroni restarting a leader tells the Citus coordinator, which holds the
group's connections meanwhile; a sync standby asks its leader to pick another one first."""

from __future__ import annotations

from collections.abc import Callable

from streamctl.config.members import Group, Member
from streamctl.errors import BackendError
from streamctl.ha import rest
from streamctl.readiness import Readiness


def _state(member: Member, ca_file: str | None) -> dict[str, object] | None:
    try:
        found = rest.get(member, "/patroni", ca_file)
    except (OSError, ValueError):
        return None  # a member that does not answer is restarted by nobody now (`up` starts it)
    return found if isinstance(found, dict) else None


def pending(group: Group, ca_file: str | None, managed: set[str]) -> dict[str, list[str]]:
    """Member -> the parameters of `managed` it waits for a restart to take, for each member that does (standbys
    first, the leader last). A member pending for other parameters only is left alone: some never clear (an
    image whose Citus raises max_prepared_transactions at start leaves its standbys pending for good), and a
    restart for them would come with every `up`."""
    out: dict[str, list[str]] = {}
    for m in group.members:
        s = _state(m, ca_file)
        reasons = s.get("pending_restart_reason") if s is not None and s.get("pending_restart") else None
        if isinstance(reasons, dict) and (ours := sorted(set(reasons) & managed)):
            out[m.name] = ours
    leader = next((s.name for s in rest.group_members(group.members, ca_file) if s.ha_role == "leader"), None)
    return dict(sorted(out.items(), key=lambda kv: kv[0] == leader))


def restart_pending(group: Group, password: str, ca_file: str | None, ready: Callable[[], bool],
                    timeout: float, managed: set[str]) -> None:
    """Each member pending a restart restarted by its Patroni, one at a time, standbys first; after each, the
    group is `ready` again (led, its standbys streaming) before the next.

    A setting a standby must not run below its leader's (max_connections, max_wal_senders, max_worker_processes,
    max_prepared_transactions, max_locks_per_transaction) lowered: Patroni runs a standby with at least its
    control file's value (its leader's), so it may keep the higher value, which PostgreSQL allows, until a
    later restart (seen with max_wal_senders: only the leader was pending and restarted)."""
    for name, reasons in pending(group, ca_file, managed).items():
        member = next(m for m in group.members if m.name == name)
        status, answer = rest.post(member, "/restart", {"restart_pending": True}, password, ca_file,
                                   timeout=timeout)
        if status != 200 and "conditions are not satisfied" not in answer:  # no longer pending: nothing to do
            raise BackendError(f"Patroni could not restart {name} to take {', '.join(reasons)}: "
                               f"{answer or status}", hint=f"see `streamctl logs {group.node.name}`")
        Readiness(f"{group.node.name} led with its standbys after restarting {name}", ready, timeout,
                  interval=0.5, hint="see `streamctl status`").wait()
