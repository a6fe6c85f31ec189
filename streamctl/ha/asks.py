"""What streamctl asks Patroni to do to a group, through its REST API (ha/rest.py): a planned switchover, a
forced failover, a standby cloned again; each waits until the group is led again (or the standby streams)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from streamctl.config.members import Group
from streamctl.errors import BackendError, NotFoundError, RefusedError
from streamctl.ha.rest import MemberState, answers, group_members, post, settled, wake_leader
from streamctl.readiness import Readiness


@dataclass(frozen=True)
class LeaderChange:
    group: str
    leader: str  # before ("" when the group had none)
    new_leader: str
    seconds: float


def _leader(group: Group, states: list[MemberState], to: str | None) -> MemberState | None:
    """The group's leader as Patroni sees it, after checking that `to` names another member of the group."""
    leader = next((s for s in states if s.ha_role == "leader"), None)
    names = [m.name for m in group.members]
    if to is not None and to not in names:
        raise NotFoundError(f"{to!r} is not a member of {group.node.name}", hint=f"its members: {', '.join(names)}")
    if leader is not None and to == leader.name:
        raise RefusedError(f"{to} already leads {group.node.name}")
    return leader


# Patroni's etcd client sticks to one etcd member until a request to it fails: the first write after that
# member is lost fails ("failed to write failover key into DCS") and the next goes to another member.
DCS_RETRY_SECONDS = 10.0


def _ask(group: Group, at: str, path: str, body: dict[str, Any], password: str, ca_file: str | None) -> None:
    member = next(m for m in group.members if m.name == at)
    deadline = time.monotonic() + DCS_RETRY_SECONDS
    status, answer = post(member, path, body, password, ca_file)
    while status == 503 and "DCS" in answer and time.monotonic() < deadline:
        time.sleep(1.0)
        status, answer = post(member, path, body, password, ca_file)
    if status == 412:  # Patroni judged it impossible (no good candidate, not the sync standby...)
        raise RefusedError(f"Patroni refused the {path[1:]} of {group.node.name}: {answer}",
                           hint="see `streamctl status`")
    if status != 200:
        raise BackendError(f"Patroni refused the {path[1:]} of {group.node.name}: {answer or status}")


def _led_again(group: Group, old: str, alive: set[str], ca_file: str | None, synchronous: bool,
               timeout: float, started: float, password: str) -> LeaderChange:
    """Wait until another member than `old` leads and every other member of `alive` streams from it (one of
    them confirming commits when synchronous)."""

    def led() -> MemberState | None:
        states = group_members(group.members, ca_file)
        found = settled(states, alive, synchronous, not_led_by=old)
        if found is None:
            wake_leader(group.members, states, alive, ca_file, lambda: password, synchronous, not_led_by=old)
        return found

    Readiness(f"{group.node.name} led by another member, its standbys streaming", lambda: led() is not None,
              timeout, interval=0.3, hint=f"see `streamctl status` and `streamctl logs {group.node.name}`").wait()
    new = led()
    return LeaderChange(group.node.name, old, new.name if new else "?", time.monotonic() - started)


def switchover(group: Group, to: str | None, password: str, ca_file: str | None, synchronous: bool,
               timeout: float = 90.0) -> LeaderChange:
    """A planned change of leader (Patroni's /switchover on the leader): to `to`, or to the standby Patroni
    picks; returns once the group is led by another member with every standby streaming again."""
    started = time.monotonic()
    states = group_members(group.members, ca_file)
    leader = _leader(group, states, to)
    if leader is None:
        raise BackendError(f"{group.node.name} has no leader to switch over from",
                           hint=f"see `streamctl status` and `streamctl logs {group.node.name}`")
    if not any(s.state == "streaming" and (to is None or s.name == to) for s in states if s.ha_role != "leader"):
        raise RefusedError(f"{group.node.name} has no streaming standby to switch over to"
                           + (f" ({to} is not streaming)" if to else ""), hint="run `streamctl up` first")
    _ask(group, leader.name, "/switchover", {"leader": leader.name, **({"candidate": to} if to else {})},
         password, ca_file)
    return _led_again(group, leader.name, {m.name for m in group.members}, ca_file, synchronous, timeout, started,
                      password)


def failover(group: Group, to: str | None, password: str, ca_file: str | None, synchronous: bool,
             timeout: float = 120.0) -> LeaderChange:
    """A forced change of leader (Patroni's /failover, asked of the candidate): to `to`, or to the healthiest
    standby (the sync standby first, then the least lag), whether the leader is healthy or not. Patroni 4
    needs a candidate for a failover. Returns once the candidate's group is led by another member than
    before, with every member that answered streaming from it."""
    started = time.monotonic()
    states = group_members(group.members, ca_file)
    if not states:
        raise BackendError(f"no member of {group.node.name} answers", hint="see `streamctl status`; "
                           "`streamctl up` starts the members that do not run")
    leader = _leader(group, states, to)
    healthy = [s for s in states if s.ha_role != "leader" and s.state in ("streaming", "running")]
    choice = [s for s in healthy if to is None or s.name == to]
    if not choice:
        named = next((s for s in states if s.name == to), None)
        raise RefusedError(f"{group.node.name} has no healthy standby to fail over to"
                           + (f" ({to} is {named.state if named else 'not running'})" if to else ""),
                           hint="see `streamctl status`; `streamctl up` starts the members that do not run")
    candidate = min(choice, key=lambda s: (s.ha_role != "sync_standby",
                                           s.lag_bytes if s.lag_bytes is not None else 1 << 62))
    alive = {m.name for m in group.members if answers(m, ca_file)}
    _ask(group, candidate.name, "/failover", {"candidate": candidate.name}, password, ca_file)
    return _led_again(group, leader.name if leader else "", alive, ca_file, synchronous, timeout, started,
                      password)


def reinitialize(group: Group, name: str, password: str, ca_file: str | None, timeout: float = 600.0) -> float:
    """One standby cloned again from its group's leader (Patroni's /reinitialize: its data directory removed, a
    new base backup): for a member whose PostgreSQL no longer starts, which Patroni leaves in "start failed".
    Returns the seconds until it streams again."""
    started = time.monotonic()
    member = next((m for m in group.members if m.name == name), None)
    if member is None:
        raise NotFoundError(f"{name!r} is not a member of {group.node.name}",
                            hint=f"its members: {', '.join(m.name for m in group.members)}")
    states = group_members(group.members, ca_file)
    if any(s.name == name and s.ha_role == "leader" for s in states):
        raise RefusedError(f"{name} leads {group.node.name}: its data is the group's",
                           hint=f"hand the lead over first: `streamctl switchover {group.node.name}`")
    if not any(s.ha_role == "leader" and s.state == "running" for s in states):
        raise RefusedError(f"{group.node.name} has no running leader to clone {name} from",
                           hint="see `streamctl status`")
    status, answer = post(member, "/reinitialize", {"force": True}, password, ca_file)
    if status != 200:
        raise BackendError(f"Patroni refused to clone {name} again: {answer or status}")

    def streams() -> bool:
        return any(s.name == name and s.state == "streaming" for s in group_members(group.members, ca_file))

    Readiness(f"{name} cloned again and streaming", streams, timeout, interval=1.0,
              hint=f"see `streamctl status` and `streamctl logs {group.node.name}`").wait()
    return time.monotonic() - started
