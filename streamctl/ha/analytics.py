"""The analytics primary under HA: a plain Patroni cluster (no Citus mode) in the same etcd, under a scope of its
own, whose replicas' logical slots (`streamctl_sub_*`) are Patroni's permanent logical slots, so a promoted
standby has them and the replicas' subscriptions carry on from it.

Patroni keeps a permanent logical slot on every standby (PostgreSQL 15: it copies the slot's file from the
leader once, restarting the standby, then advances it to the leader's confirmed position every loop; it turns
hot_standby_feedback on). On the leader it drops the slots it does not know, so `ignore_slots` leaves it every
pgoutput slot of the analytics database: a subscription's slot before it is declared, the initial copy's. The
set of permanent slots follows the topology's replicas through Patroni's dynamic configuration (PATCH /config)."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from streamctl.config.members import Group, Member
from streamctl.config.model import Role, Topology
from streamctl.errors import BackendError
from streamctl.names import HA_REST_USER, SUBSCRIPTION_PREFIX, subscription_name

PLUGIN = "pgoutput"


def scope(t: Topology) -> str:
    """The analytics primary's Patroni scope, beside the Citus groups' (`<cluster>`)."""
    return f"{t.cluster}-analytics"


def slot_spec(t: Topology) -> dict[str, str]:
    return {"type": "logical", "database": t.analytics.database, "plugin": PLUGIN}


def wanted_slots(t: Topology) -> dict[str, dict[str, str]]:
    """A permanent logical slot per replica of the topology, named like its subscription."""
    return {subscription_name(r.name): slot_spec(t) for r in t.nodes_by_role(Role.ANALYTICS_REPLICA)}


def dcs_settings(t: Topology) -> dict[str, Any]:
    """What the analytics group's bootstrap DCS configuration adds: the leader leaves alone the subscriptions'
    slots it does not know yet (and the initial copy's); standbys send feedback, which logical slots need."""
    return {"ignore_slots": [slot_spec(t)], "postgresql": {"parameters": {"hot_standby_feedback": "on"}}}


def _call(member: Member, method: str, path: str, ca_file: str | None, password: str | None = None,
          body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    scheme = "https" if ca_file else "http"
    request = urllib.request.Request(f"{scheme}://{member.node.host}:{member.rest_port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if password is not None:
        token = base64.b64encode(f"{HA_REST_USER}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            text = response.read().decode(errors="replace")
            return response.status, json.loads(text) if text.strip().startswith("{") else text
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace").strip()


def declared_slots(group: Group, ca_file: str | None) -> dict[str, Any]:
    """The permanent slots in the group's dynamic configuration (GET /config of the first member that answers)."""
    for member in group.members:
        try:
            status, config = _call(member, "GET", "/config", ca_file)
        except OSError:
            continue
        if status == 200 and isinstance(config, dict):
            return dict(config.get("slots") or {})
    raise BackendError(f"no member of {group.node.name} answers for Patroni's configuration",
                       hint="see `streamctl status`; `streamctl up` starts the members that do not run")


def slot_changes(t: Topology, declared: dict[str, Any]) -> dict[str, Any]:
    """The PATCH that makes the permanent slots the topology's: missing or different ones set, streamctl's
    slots of replicas gone removed (null); other permanent slots (an operator's) are left alone."""
    wanted = wanted_slots(t)
    out: dict[str, Any] = {n: spec for n, spec in wanted.items()
                           if not isinstance(declared.get(n), dict) or {k: declared[n].get(k) for k in spec} != spec}
    out.update({n: None for n, spec in declared.items()
                if n.startswith(SUBSCRIPTION_PREFIX) and n not in wanted and spec is not None})
    return out


def declare_slots(group: Group, changes: dict[str, Any], password: str, ca_file: str | None,
                  attempts: int = 5) -> None:
    """PATCH /config with the slots' changes (Patroni merges it into the dynamic configuration, a null removes a
    key); a concurrent change of the configuration (409) is retried."""
    answer: Any = ""
    for _ in range(attempts):
        for member in group.members:
            try:
                status, answer = _call(member, "PATCH", "/config", ca_file, password, {"slots": changes})
            except OSError as exc:
                answer = str(exc)
                continue
            if status == 200:
                return
            if status != 409:
                raise BackendError(f"Patroni refused the permanent slots of {group.node.name}: {answer or status}")
            break
        time.sleep(0.5)
    raise BackendError(f"Patroni's configuration of {group.node.name} could not be changed: {answer}",
                       hint="see `streamctl status`; run `streamctl up` again")
