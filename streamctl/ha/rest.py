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

from streamctl.config.members import Member
from streamctl.errors import BackendError
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


def _awaits_leaders_loop(states: list[MemberState], expected: set[str], synchronous: bool,
                         not_led_by: str) -> MemberState | None:
    """The group's leader when what the group waits for is that leader's next loop, up to loop_wait seconds
    away: a standby that runs but does not stream yet (the replication slot it asks for is made in that loop),
    or, when synchronous, standbys that all stream but none confirms commits (it picks one in that loop)."""
    leaders = [s for s in states if s.ha_role == "leader" and s.state == "running" and s.name != not_led_by]
    if len(leaders) != 1:
        return None
    others = [s for s in states if s.name in expected and s.name != leaders[0].name]
    if any(s.state == "running" for s in others):  # a replica that streams says "streaming"
        return leaders[0]
    return settled(states, expected, False, not_led_by) if synchronous else None


def wake_leader(members: tuple[Member, ...], states: list[MemberState], expected: set[str], ca_file: str | None,
                password: Callable[[], str] | None, synchronous: bool = True, not_led_by: str = "") -> None:
    """When the group waits for its leader's next loop (`_awaits_leaders_loop`): Patroni runs its loop at once
    after any PATCH of /config, and an unchanged value writes nothing, so the leader is asked so, at most once
    a second."""
    leader = _awaits_leaders_loop(states, expected, synchronous, not_led_by)
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
        pass  # only a shortcut: the leader's own loop does it anyway


def ready(members: tuple[Member, ...], ca_file: str | None, synchronous: bool,
          password: Callable[[], str] | None = None) -> bool:
    """One member leads and runs, every other streams from it and, when synchronous, one confirms commits
    (with the REST API's `password`, the leader is asked to run its loop now when that is what the group
    waits for: `wake_leader`)."""
    states, expected = group_members(members, ca_file), {m.name for m in members}
    if settled(states, expected, synchronous) is not None:
        return True
    wake_leader(members, states, expected, ca_file, password, synchronous)
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


def answers(member: Member, ca_file: str | None) -> bool:
    try:
        get(member, "/patroni", ca_file, timeout=2.0)
    except (OSError, ValueError):
        return False
    return True


def _answering(members: tuple[Member, ...], ca_file: str | None) -> Member:
    for member in members:
        if answers(member, ca_file):
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
