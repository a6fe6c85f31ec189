"""Asking Patroni: its REST API, one member's at a time (over TLS from the cluster CA when it is on), read as
each member's role, state, timeline and lag."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
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


def get(member: Member, path: str, ca_file: str | None, timeout: float = 3.0) -> Any:
    """GET one of a member's endpoints: its JSON (raises OSError when the member does not answer)."""
    scheme = "https" if ca_file else "http"
    url = f"{scheme}://{member.node.host}:{member.rest_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_context(ca_file)) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # Patroni answers health checks with 503 and a body
        return json.loads(exc.read() or b"{}")


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


def ready(members: tuple[Member, ...], ca_file: str | None, synchronous: bool) -> bool:
    """One member leads and runs, every other streams from it and, when synchronous, one confirms commits."""
    states = group_members(members, ca_file)
    leaders = [s for s in states if s.ha_role == "leader" and s.state == "running"]
    others = [s for s in states if s.ha_role != "leader"]
    return (len(states) == len(members) and len(leaders) == 1 and all(s.state == "streaming" for s in others)
            and (not synchronous or any(s.ha_role == "sync_standby" for s in others)))


def post(member: Member, path: str, body: dict[str, Any], password: str, ca_file: str | None,
         timeout: float = 30.0) -> tuple[int, str]:
    """POST to one of a member's unsafe endpoints, as the REST API's user: (status, Patroni's answer)."""
    scheme = "https" if ca_file else "http"
    request = urllib.request.Request(f"{scheme}://{member.node.host}:{member.rest_port}{path}", method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    token = base64.b64encode(f"{HA_REST_USER}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(ca_file)) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace").strip()


@dataclass(frozen=True)
class Switchover:
    group: str
    leader: str  # before
    new_leader: str
    seconds: float


def switchover(group: Group, to: str | None, password: str, ca_file: str | None, synchronous: bool,
               timeout: float = 90.0) -> Switchover:
    """A planned change of leader (Patroni's /switchover on the leader): to `to`, or to the standby Patroni
    picks; returns once the group is led by another member with every standby streaming again."""
    started = time.monotonic()
    states = group_members(group.members, ca_file)
    leader = next((s for s in states if s.ha_role == "leader"), None)
    if leader is None:
        raise BackendError(f"{group.node.name} has no leader to switch over from",
                           hint=f"see `streamctl status` and `streamctl logs {group.node.name}`")
    names = [m.name for m in group.members]
    if to is not None and to not in names:
        raise NotFoundError(f"{to!r} is not a member of {group.node.name}", hint=f"its members: {', '.join(names)}")
    if to == leader.name:
        raise RefusedError(f"{to} already leads {group.node.name}")
    if not any(s.state == "streaming" and (to is None or s.name == to) for s in states if s.ha_role != "leader"):
        raise RefusedError(f"{group.node.name} has no streaming standby to switch over to"
                           + (f" ({to} is not streaming)" if to else ""), hint="run `streamctl up` first")
    at = next(m for m in group.members if m.name == leader.name)
    status, answer = post(at, "/switchover", {"leader": leader.name, **({"candidate": to} if to else {})},
                          password, ca_file)
    if status != 200:
        raise BackendError(f"Patroni refused the switchover of {group.node.name}: {answer or status}")

    def done() -> bool:
        now = group_members(group.members, ca_file)
        return (any(s.ha_role == "leader" and s.name != leader.name for s in now)
                and ready(group.members, ca_file, synchronous))

    Readiness(f"{group.node.name} led by another member", done, timeout, interval=0.3,
              hint=f"see `streamctl logs {group.node.name}`").wait()
    new = next(s.name for s in group_members(group.members, ca_file) if s.ha_role == "leader")
    return Switchover(group.node.name, leader.name, new, time.monotonic() - started)
