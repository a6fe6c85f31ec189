"""Continuous WAL archiving as `up` sets it up: the stanza first, then archive_command (archive_mode is
already on from the node's settings, and with no command PostgreSQL keeps its WAL), then a check that a
WAL segment reaches the repository."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from psycopg import sql

from streamctl.backup.pgbackrest import PgBackRest, Stanza

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
    if not tool.config.exists() or tool.config.read_text() != tool.render():
        return [f"write {tool.config.name}", f"create stanza {st.name}", "archive WAL to it"]
    out = [] if stanza_exists(tool, st.name) else [f"create stanza {st.name}"]
    if archive_command(tool.ctx, st.node.name) != tool.archive_command(st.name):
        out.append(f"archive WAL to stanza {st.name}")
    return out


def apply(tool: PgBackRest, st: Stanza) -> None:
    tool.write_config()
    tool.run(st.name, "stanza-create", what=f"{st.node.name}: create stanza {st.name}", timeout=300)
    with tool.ctx.pg_connect(st.node.name) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(
            sql.Literal(tool.archive_command(st.name))))
        conn.execute("SELECT pg_reload_conf()")
    # `check` switches WAL and waits for the segment in the repository: archiving is proven to work.
    tool.run(st.name, "check", "--archive-timeout=60", what=f"{st.node.name}: check WAL archiving", timeout=300)
    _await_archiver(tool.ctx, st.node.name)


def _await_archiver(ctx: ClusterContext, node: str, timeout: float = 10.0) -> None:
    """`check` sees the segment in the repository a moment before the archiver records it
    (pg_stat_archiver is updated once archive_command has returned): wait for that record, so a `verify`
    right after `up` judges what `check` proved."""
    deadline = time.monotonic() + timeout
    with ctx.pg_connect(node) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT last_archived_wal IS NOT NULL FROM pg_stat_archiver").fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
