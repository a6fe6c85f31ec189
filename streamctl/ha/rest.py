"""Asking Patroni: its REST API, one member's at a time (over TLS from the cluster CA when it is on), read as
each member's role, state, timeline and lag."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from streamctl.config.members import Member

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
