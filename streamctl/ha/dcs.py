"""Patroni's records in etcd, where streamctl itself must change them: a Citus group that leaves the cluster
takes its keys with it (its `initialize` key holds the old system id, which a group bootstrapped later under
the same number would not match). Through etcd's v3 JSON gateway (keys base64-encoded)."""

from __future__ import annotations

import base64
import json
import urllib.request

from streamctl.config.members import EtcdMember
from streamctl.errors import BackendError
from streamctl.names import HA_NAMESPACE


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
