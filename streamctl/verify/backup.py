"""WAL archiving (when the topology has a `backup:` section): on every backed-up node archive_command
pushes to a pgBackRest stanza, the last attempt did not fail, and no finished segment has waited longer
than two archive_timeouts to reach the repository."""

from __future__ import annotations

from datetime import UTC, datetime

from streamctl.config.model import BACKED_UP_ROLES, Topology
from streamctl.context import ClusterContext
from streamctl.verify.result import CheckResult, Verdict, failed, guarded, passed

ARCHIVING = "backup.archiving"

QUERY = """SELECT current_setting('archive_mode'), current_setting('archive_command'),
       last_archived_wal, last_archived_time, last_failed_wal, last_failed_time, archived_count, failed_count,
       pg_walfile_name(pg_current_wal_lsn()),
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
       (SELECT min(modification) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
FROM pg_stat_archiver"""


def skip_reason(t: Topology) -> str | None:
    return None if t.backup_on else "no backup section in the topology"


def _segment_no(name: str) -> int:
    """A WAL file name's position on its timeline (log * 256 + seg, 16 MB segments)."""
    return int(name[8:16], 16) * 256 + int(name[16:24], 16)


def judge(row: tuple, timeout_s: int, now: datetime) -> Verdict:  # type: ignore[type-arg]
    mode, command, last_wal, last_time, failed_wal, failed_time, archived, failures, current, ready, oldest = row
    data = {"last_archived_wal": last_wal, "last_archived_time": last_time.isoformat() if last_time else None,
            "archived_count": archived, "failed_count": failures}
    if mode != "on" or "archive-push" not in command:
        return failed(f"archiving is not set up (archive_mode={mode}, archive_command={command or 'empty'}): "
                      "run `streamctl up`", **data)
    if failed_time is not None and (last_time is None or failed_time > last_time):
        return failed(f"the last archiving attempt failed ({failed_wal} at {failed_time:%Y-%m-%d %H:%M:%S}); "
                      f"{failures} failures so far", **data)
    if last_wal is None:
        # nothing archived since the statistics began (a new or restored server): judged by the segments
        # PostgreSQL marked ready and the archiver has not taken yet
        if not ready:
            return passed("no finished WAL segment since the server's archive statistics began; none waiting",
                          waiting=0, **data)
        age = (now - oldest).total_seconds() if oldest else 0.0
        if age > 2 * timeout_s:
            return failed(f"no WAL segment has been archived yet: {ready} finished segment(s) waiting, the "
                          f"oldest for {age:.0f}s", waiting=ready, **data)
        return passed(f"{ready} finished segment(s) on the way to the repository (the oldest {age:.0f}s)",
                      waiting=ready, **data)
    waiting = _segment_no(current) - _segment_no(last_wal[:24]) - 1 if current[:8] == last_wal[:8] else 0
    age = (now - last_time).total_seconds()
    if waiting > 0 and age > 2 * timeout_s:
        return failed(f"{waiting} finished WAL segment(s) not archived; the last one archived "
                      f"{age:.0f}s ago ({last_wal})", waiting=waiting, **data)
    return passed(f"last segment {last_wal} archived {age:.0f}s ago, no failure since", waiting=max(waiting, 0),
                  **data)


def check_archiving(ctx: ClusterContext) -> list[CheckResult]:
    t = ctx.topology
    timeout_s = t.backup.archive_timeout if t.backup else 60
    out = []
    for node in (n for n in t.nodes() if n.role in BACKED_UP_ROLES):
        def body(name: str = node.name) -> Verdict:
            with ctx.pg_connect(name) as conn:
                row = conn.execute(QUERY).fetchone()
            assert row is not None
            return judge(tuple(row), timeout_s, datetime.now(UTC))

        out.append(guarded(ARCHIVING, node.name, body))
    return out
