"""Continuous WAL archiving as `up` sets it up: the stanza first, then archive_command (archive_mode is
already on from the node's settings, and with no command PostgreSQL keeps its WAL), then a check that a
WAL segment reaches the repository. Under HA archive_command is Patroni's on every member (backup/ha.py):
the step creates the stanza and checks that the group's leader archives into it."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from psycopg import sql

from streamctl.backup import ha
from streamctl.backup.pgbackrest import BackupError, PgBackRest, Stanza

if TYPE_CHECKING:
    from streamctl.context import ClusterContext


def stanza_exists(tool: PgBackRest, stanza: str) -> bool:
    out = tool.run(stanza, "info", "--output=json", what=f"read stanza {stanza}", timeout=120)
    entries: list[dict[str, Any]] = json.loads(out or "[]")
    # status 0: ok, 2: no backup yet; 1 and 3: the stanza is missing or has no data
    return any(e.get("name") == stanza and e.get("status", {}).get("code") in (0, 2) for e in entries)


def archive_command(ctx: ClusterContext, node: str) -> str:
    with ctx.pg_connect(node) as conn:
        row = conn.execute("SELECT current_setting('archive_command')").fetchone()
    return str(row[0]) if row else ""


def pending(tool: PgBackRest, st: Stanza) -> list[str]:
    if not tool.config_current(st.node):
        return [f"write {tool.config.name}", f"create stanza {st.name}", "archive WAL to it"]
    out = [] if stanza_exists(tool, st.name) else [f"create stanza {st.name}"]
    command = archive_command(tool.ctx, st.node.name)
    if ha.group_of(tool.ctx.topology, st.node) is not None:  # Patroni's command: the leader's own
        if not ha.archiving_on(command, st.name):
            out.append(f"archive WAL to stanza {st.name} (Patroni's configuration; `up` restarts the group)")
    elif command != tool.archive_command(st.name):
        out.append(f"archive WAL to stanza {st.name}")
    return out


def apply(tool: PgBackRest, st: Stanza) -> None:
    tool.write_config(st.node)
    # Under HA the leader archives into the stanza from its start: its asynchronous archive-push holds
    # the stanza's archive lock now and then until the stanza exists, and stanza-create waits for it.
    tool.run(st.name, "stanza-create", what=f"{st.node.name}: create stanza {st.name}", timeout=300,
             lock_wait=60)
    if ha.group_of(tool.ctx.topology, st.node) is None:  # under HA Patroni sets it on every member, from the start
        with tool.ctx.pg_connect(st.node.name) as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(
                sql.Literal(tool.archive_command(st.name))))
            conn.execute("SELECT pg_reload_conf()")
    # `check` switches WAL and waits for the segment in the repository: archiving is proven to work.
    # It sees the segment there a moment before the archiver records it (pg_stat_archiver is updated once
    # archive_command has returned): wait for that record too, so a `verify` right after `up` agrees.
    with tool.ctx.pg_connect(st.node.name) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
    before = str(row[0]) if row else ""
    tool.run(st.name, "check", "--archive-timeout=60", what=f"{st.node.name}: check WAL archiving", timeout=300)
    wait_archived(tool.ctx, st.node.name, before)


def wait_archived(ctx: ClusterContext, node: str, segment: str, timeout: float = 120.0) -> None:
    """Until pg_stat_archiver says `segment` (or a later one) reached the repository."""
    deadline = time.monotonic() + timeout
    with ctx.pg_connect(node) as conn:
        while True:
            row = conn.execute("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), "
                               "failed_count FROM pg_stat_archiver").fetchone()
            assert row is not None
            if row[0] and row[0][:24] >= segment:
                return
            if time.monotonic() > deadline:
                raise BackupError(f"{node}: WAL segment {segment} was not archived within {timeout:.0f}s "
                                  f"(last archived {row[0] or 'none'}, last failed {row[1] or 'none'}, "
                                  f"{row[2]} failures)", hint="see the node's log: `streamctl logs " + node + "`")
            time.sleep(0.1)
