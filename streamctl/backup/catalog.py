"""Backup sets as the repository records them: each node's pgBackRest backup carries annotations naming
the streamctl cluster, node and set; the set's restore point is annotated on them once it is archived.
Nothing else is stored, so a repository alone (a CI cache) is enough to list and restore."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamctl.backup.pgbackrest import PgBackRest
from streamctl.errors import NotFoundError

A_CLUSTER, A_NODE, A_SET = "streamctl-cluster", "streamctl-node", "streamctl-set"
A_POINT, A_POINT_TIME, A_TYPE = "streamctl-point", "streamctl-point-time", "streamctl-type"


@dataclass
class NodeBackup:
    node: str
    stanza: str
    label: str  # pgBackRest's own backup label (the --set of a restore)
    type: str
    started: int
    stopped: int
    size: int  # data size
    repo_size: int  # bytes this backup added to the repository
    wal_start: str
    wal_stop: str
    archive_max: str  # the newest WAL segment archived for the stanza: how far the set can be replayed


@dataclass
class BackupSet:
    label: str
    cluster: str
    type: str
    point: str | None = None  # None: the restore point was never completed; the set cannot be restored
    point_time: str | None = None
    nodes: list[NodeBackup] = field(default_factory=list)
    redis: bool = False

    @property
    def started(self) -> int:
        return min(n.started for n in self.nodes)

    @property
    def stopped(self) -> int:
        return max(n.stopped for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "cluster": self.cluster, "type": self.type,
            "started": _iso(self.started), "finished": _iso(self.stopped),
            "size": sum(n.size for n in self.nodes), "repo_size": sum(n.repo_size for n in self.nodes),
            "restore_points": [{"name": self.point, "time": self.point_time}] if self.point else [],
            "restorable": self.point is not None,
            "redis": self.redis,
            "nodes": [{"node": n.node, "stanza": n.stanza, "backup": n.label, "type": n.type, "size": n.size,
                       "repo_size": n.repo_size, "wal": {"from": n.wal_start, "to": n.archive_max}}
                      for n in self.nodes],
        }


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def backup_sets(tool: PgBackRest, cluster: str, redis_labels: set[str] | None = None) -> list[BackupSet]:
    """The sets of `cluster` in the repository, oldest first."""
    sets: dict[str, BackupSet] = {}
    for stanza in tool.info():
        archive_max = max((a.get("max") or "" for a in stanza.get("archive", [])), default="")
        for b in stanza.get("backup", []):
            ann = b.get("annotation") or {}
            if ann.get(A_CLUSTER) != cluster or A_SET not in ann:
                continue
            s = sets.setdefault(ann[A_SET], BackupSet(ann[A_SET], cluster, ann.get(A_TYPE, b["type"])))
            if A_POINT in ann:
                s.point, s.point_time = ann[A_POINT], ann.get(A_POINT_TIME)
            s.nodes.append(NodeBackup(
                ann.get(A_NODE, stanza["name"]), stanza["name"], b["label"], b["type"],
                int(b["timestamp"]["start"]), int(b["timestamp"]["stop"]), int(b["info"]["size"]),
                int(b["info"]["repository"]["delta"]), b["archive"]["start"], b["archive"]["stop"], archive_max))
    out = sorted(sets.values(), key=lambda s: s.started)
    for s in out:
        # a set is whole only if every node has the point (annotated only after it was archived everywhere)
        s.nodes.sort(key=lambda n: n.node)
        s.redis = s.label in (redis_labels or set())
    return out


def find_set(sets: list[BackupSet], *, label: str | None = None, point: str | None = None) -> BackupSet:
    """The set with that label, or whose restore point has that name."""
    for s in sets:
        if (label is not None and s.label == label) or (point is not None and s.point == point):
            return s
    what = f"backup set {label!r}" if label is not None else f"restore point {point!r}"
    known = ", ".join(s.label for s in sets) or "none"
    raise NotFoundError(f"no {what} in the repository", details=[f"backup sets: {known}"],
                        hint="`streamctl backup list` shows the sets and their restore points")


def set_for_time(sets: list[BackupSet], when: datetime) -> BackupSet:
    """The set whose restore point is the latest one at or before `when` (only a restore point is
    consistent across Citus nodes, so a timestamp resolves to one)."""
    from streamctl.errors import RefusedError

    points = [(datetime.fromisoformat(s.point_time), s) for s in sets if s.point and s.point_time]
    if not points:
        raise NotFoundError("the repository holds no restorable backup set", hint="take one: `streamctl backup`")
    earlier = [(t, s) for t, s in points if t <= when]
    if not earlier:
        first = min(t for t, _ in points)
        raise RefusedError(f"{when.isoformat()} is before the WAL range the repository can reach: its first "
                           f"restore point is at {first.isoformat(timespec='seconds')}",
                           hint="`streamctl backup list` shows the sets and their restore points")
    if when > datetime.now(UTC):
        raise RefusedError(f"{when.isoformat()} is in the future: past the WAL the repository holds")
    return max(earlier, key=lambda ts: ts[0])[1]
