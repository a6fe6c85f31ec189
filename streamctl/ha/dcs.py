"""Patroni's DCS as `status` and `verify` report it: whether etcd answers and has a quorum, and when it does
not, what each group's members do about it, asked of each member's REST API (Patroni's /cluster reads the
DCS and fails with it). With failsafe_mode on (services/ha.py) a leader keeps serving as primary while every
member of its group answers its calls; otherwise, or when one does not answer, Patroni demotes it.

And Patroni's records where streamctl itself must change them: a Citus group that leaves the cluster takes its
keys with it (its `initialize` key holds the old system id, which a group bootstrapped later under the same
number would not match), through etcd's v3 JSON gateway (keys base64-encoded)."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamctl.config.members import EtcdMember, Group, etcd_members
from streamctl.config.model import Topology
from streamctl.errors import BackendError
from streamctl.ha import etcd, rest
from streamctl.names import HA_NAMESPACE


@dataclass(frozen=True)
class Dcs:
    members: int
    answering: int
    healthy: bool

    @property
    def problem(self) -> str | None:
        """None when etcd is healthy; else what is wrong with it, in a few words."""
        if self.healthy:
            return None
        if not self.answering:
            return "etcd unreachable" + (f" (none of its {self.members} members answers)" if self.members > 1 else "")
        return f"etcd has no quorum ({self.answering} of {self.members} members answer)"


def dcs_state(t: Topology, hosts: Mapping[str, str] | None = None) -> Dcs:
    members = etcd_members(t, hosts)
    answering, healthy = 0, False
    for m in members:
        try:
            healthy = etcd.healthy(m) or healthy
        except (OSError, ValueError):
            continue
        answering += 1
    return Dcs(len(members), answering, healthy)


@dataclass(frozen=True)
class MemberView:
    """One member as its own Patroni sees itself (no DCS needed)."""

    name: str
    primary: bool
    state: str
    timeline: int | None
    failsafe_active: bool


def members_without_dcs(group: Group, ca_file: str | None) -> list[MemberView]:
    """Each member that answers, from its own /patroni."""
    out = []
    for m in group.members:
        try:
            found: dict[str, Any] = rest.get(m, "/patroni", ca_file, timeout=2.0)
        except (OSError, ValueError):
            continue
        out.append(MemberView(m.name, found.get("role") in ("primary", "master"), str(found.get("state", "")),
                              found.get("timeline"), bool(found.get("failsafe_mode_is_active"))))
    return out


def explain(group: Group, problem: str, views: list[MemberView]) -> str:
    """What the group does while the DCS is away, in one sentence."""
    primary = next((v for v in views if v.primary and v.state == "running"), None)
    if primary is not None and primary.failsafe_active:
        return (f"{problem}: {primary.name} keeps serving as {group.node.name}'s primary in Patroni's failsafe mode "
                f"(every member of the group answers it); no failover can happen until etcd is back")
    if primary is not None:
        return f"{problem}: {primary.name} still serves as {group.node.name}'s primary (failsafe mode not active yet)"
    return (f"{problem}: no member serves as {group.node.name}'s primary (Patroni demoted it: failsafe mode keeps "
            "a primary only while every member of its group answers it)")


def group_prefix(cluster: str, group: int) -> str:
    """Patroni's keys of one Citus group: namespace, scope (the cluster), the group's number."""
    return f"{HA_NAMESPACE.rstrip('/')}/{cluster}/{group}/"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forget_group(members: list[EtcdMember], cluster: str, group: int, timeout: float = 5.0) -> int:
    """Delete every key of the group (its members must be stopped first, or they write them again); returns
    how many were deleted. The first member that answers does it; BackendError when none does."""
    prefix = group_prefix(cluster, group)
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the range ends just past every key under the prefix
    body = json.dumps({"key": _b64(prefix), "range_end": _b64(end)}).encode()
    errors = []
    for m in members:
        request = urllib.request.Request(f"http://{m.host}:{m.port}/v3/kv/deleterange", data=body,  # noqa: S310
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(json.load(response).get("deleted", 0))
        except (OSError, ValueError) as exc:
            errors.append(f"{m.name} ({m.host}:{m.port}): {exc}")
    raise BackendError(f"etcd did not remove Patroni's keys of group {group}", details=errors,
                       hint="start etcd (`streamctl up`) and run the command again")
