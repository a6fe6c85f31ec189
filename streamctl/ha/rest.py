"""Asking Patroni: its REST API, one member's at a time (over TLS from the cluster CA when it is on), read as
each member's role, state, timeline and lag."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamctl.config.members import Group, Member
from streamctl.errors import BackendError, NotFoundError, RefusedError
from streamctl.names import HA_REST_USER
from streamctl.readiness import Readiness

ROLES = {"leader": "leader", "sync_standby": "sync_standby", "quorum_standby": "sync_standby"}


@dataclass(frozen=True)
class MemberState:
    name: str
    ha_role: str  # leader | sync_standby | replica
    state: str  # Patroni's: running, streaming, starting, stopped...
    host: str
    port: int
    timeline: int | None
    lag_bytes: int | None  # None when Patroni does not know it (a member down)


def _context(ca_file: str | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def _url(member: Member, path: str, ca_file: str | None) -> str:
    return f"{'https' if ca_file else 'http'}://{member.node.host}:{member.rest_port}{path}"


def get(member: Member, path: str, ca_file: str | None, timeout: float = 3.0) -> Any:
    """GET one of a member's endpoints: its JSON (raises OSError when the member does not answer)."""
    try:
        with urllib.request.urlopen(_url(member, path, ca_file), timeout=timeout,  # noqa: S310
                                    context=_context(ca_file)) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # Patroni answers health checks with 503 and a body
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:  # an error page (e.g. /config's 502 while etcd holds no configuration): no answer
            return {}


def group_members(members: tuple[Member, ...], ca_file: str | None) -> list[MemberState]:
    """The group's members as the first member that answers sees them (Patroni's /cluster); [] when none does."""
    for member in members:
        try:
            found = get(member, "/cluster", ca_file)
        except (OSError, ValueError):
            continue
        return [MemberState(m["name"], ROLES.get(m.get("role", ""), "replica"), m.get("state", ""), m["host"],
                            int(m["port"]), m.get("timeline"), m["lag"] if isinstance(m.get("lag"), int) else
                            (0 if m.get("role") == "leader" else None)) for m in found.get("members", [])]
    return []


def settled(states: list[MemberState], expected: set[str], synchronous: bool,
            not_led_by: str = "") -> MemberState | None:
    """The group's leader when one member (not `not_led_by`) leads and runs and every other member of
    `expected` streams from it (one of them confirming commits when synchronous); else None."""
    leaders = [s for s in states if s.ha_role == "leader" and s.state == "running" and s.name != not_led_by]
    if len(leaders) != 1:
        return None
    leader = leaders[0]
    others = [s for s in states if s.name in expected and s.name != leader.name]
    streaming = len(others) == len(expected - {leader.name}) and all(s.state == "streaming" for s in others)
    confirmed = not synchronous or not others or any(s.ha_role == "sync_standby" for s in others)
    return leader if streaming and confirmed else None


_WOKEN: dict[str, float] = {}  # a leader's REST address: when its loop was last woken


def wake_for_sync(members: tuple[Member, ...], states: list[MemberState], expected: set[str], ca_file: str | None,
                  password: Callable[[], str] | None, not_led_by: str = "") -> None:
    """The group is led and its standbys stream, but none confirms commits yet: Patroni's leader picks its
    sync standby at its next loop, up to loop_wait seconds away. Patroni runs its loop at once after any PATCH
    of /config, and an unchanged value writes nothing: the leader is asked so, at most once a second."""
    leader = settled(states, expected, False, not_led_by)
    member = next((m for m in members if leader is not None and m.name == leader.name), None)
    if member is None or password is None:
        return
    key, now = _url(member, "", ca_file), time.monotonic()
    if now - _WOKEN.get(key, 0.0) < 1.0:
        return
    _WOKEN[key] = now
    try:
        config = get(member, "/config", ca_file)
        if isinstance(config, dict) and "loop_wait" in config and (secret := password()):
            post(member, "/config", {"loop_wait": config["loop_wait"]}, secret, ca_file, timeout=5.0, method="PATCH")
    except (OSError, ValueError):
        pass  # only a shortcut: the leader's own loop assigns the sync standby anyway


def ready(members: tuple[Member, ...], ca_file: str | None, synchronous: bool,
          password: Callable[[], str] | None = None) -> bool:
    """One member leads and runs, every other streams from it and, when synchronous, one confirms commits
    (with the REST API's `password`, the leader is asked to pick its sync standby now: `wake_for_sync`)."""
    states, expected = group_members(members, ca_file), {m.name for m in members}
    if settled(states, expected, synchronous) is not None:
        return True
    if synchronous:
        wake_for_sync(members, states, expected, ca_file, password)
    return False


LOOP_MARGIN = 3  # seconds after a change that a member's loop must have started at to have read it


def wait_loops_since(members: list[Member] | tuple[Member, ...], since: float, ca_file: str | None, timeout: float,
                     what: str, silent_ok: bool = False) -> None:
    """Until each member's Patroni has started a loop LOOP_MARGIN seconds after `since` (a time.time(); its
    `dcs_last_seen`): it has read what changed (its dynamic configuration, or its file after a reload).
    `silent_ok`: a member that does not answer counts as done (it reads the change when its Patroni starts)."""

    def seen(m: Member) -> bool:
        try:
            state = get(m, "/patroni", ca_file)
        except (OSError, ValueError):
            if silent_ok:
                return True
            raise
        return int(str(state.get("dcs_last_seen", 0) if isinstance(state, dict) else 0)) >= since + LOOP_MARGIN

    Readiness(what, lambda: all(seen(m) for m in members), timeout, interval=0.5,
              hint="see `streamctl status` and `streamctl logs NODE`").wait()


def post(member: Member, path: str, body: dict[str, Any], password: str, ca_file: str | None,
         timeout: float = 30.0, method: str = "POST") -> tuple[int, str]:
    """POST (or PATCH...) to one of a member's unsafe endpoints, as the REST API's user: (status, answer)."""
    request = urllib.request.Request(_url(member, path, ca_file), method=method,
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    token = base64.b64encode(f"{HA_REST_USER}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(ca_file)) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace").strip()


def _answering(members: tuple[Member, ...], ca_file: str | None) -> Member:
    for member in members:
        if _answers(member, ca_file):
            return member
    raise BackendError(f"no member of {members[0].node.name} answers on its REST API",
                       hint="see `streamctl status`; `streamctl up` starts the members that do not run")


def dynamic_config(members: tuple[Member, ...], ca_file: str | None, timeout: float = 60.0) -> dict[str, Any]:
    """The group's dynamic configuration (Patroni's /config, one copy per Citus group). A group whose keys
    left etcd (released by a `scale` that was interrupted, then resumed) has none until its leader's next loop
    writes it back: waited for."""
    found: dict[str, Any] = {}

    def known() -> bool:
        answer = get(_answering(members, ca_file), "/config", ca_file)
        found.update(answer if isinstance(answer, dict) else {})
        return bool(found)

    Readiness(f"{members[0].node.name}'s dynamic configuration in etcd", known, timeout, interval=0.5,
              hint="see `streamctl status`").wait()
    return found


def patch_config(members: tuple[Member, ...], change: dict[str, Any], password: str,
                 ca_file: str | None) -> tuple[int, str]:
    """Change the group's dynamic configuration (merged into it by Patroni): (status, answer)."""
    return post(_answering(members, ca_file), "/config", change, password, ca_file, method="PATCH")


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
        if found is None and synchronous:
            wake_for_sync(group.members, states, alive, ca_file, lambda: password, not_led_by=old)
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


def _answers(member: Member, ca_file: str | None) -> bool:
    try:
        get(member, "/patroni", ca_file, timeout=2.0)
    except (OSError, ValueError):
        return False
    return True


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
    alive = {m.name for m in group.members if _answers(m, ca_file)}
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
