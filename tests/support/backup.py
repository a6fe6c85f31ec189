"""Backup tests' measures of a platform (every user table's rows and md5 on every backed-up node, with
verify's own chunk SQL) and the removal of WAL segments from a directory repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamctl.verify.checksum import Chunk, NoKeyError, chunk_query, columns, primary_key

SUMMED_ROLES = ("coordinator", "worker", "analytics_primary")


def node_sums(conn: Any) -> dict[str, tuple[int, str | None]]:
    """Rows and md5 of every user table on one node (shards included), with verify's chunk SQL."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' ORDER BY 1").fetchall()]
    out = {}
    for table in tables:
        try:
            key = primary_key(conn, table)
        except NoKeyError:
            key = columns(conn, table)
        query, params = chunk_query(table, key, columns(conn, table), Chunk(None, None))
        row = conn.execute(query, params).fetchone()
        out[table] = (int(row[0]), row[1])
    return out


def platform_sums(ctx: Any) -> dict[str, dict[str, tuple[int, str | None]]]:
    out = {}
    for node in ctx.topology.nodes():
        if node.role.value in SUMMED_ROLES:
            with ctx.pg_connect(node.name) as conn:
                out[node.name] = node_sums(conn)
    return out


def remove_wal_after(repo: Path, stanza: str, wal_stop: str) -> list[Path]:
    """Delete the stanza's archived WAL segments after `wal_stop` (a gap in the repository); the removed."""
    gone = [p for p in (repo / "archive" / stanza).rglob("0000000*") if p.name[:24] > wal_stop and len(p.name) > 40]
    for p in gone:
        p.unlink()
    return gone


def backed_up_story(c: Any, state: dict[str, Any]) -> None:
    """Seed, full backup s1 (its rows in state["sums_s1"], Citus's nodes in state["nodes_before"]), later
    changes (five titles deleted with what cascades, a new genre, watch history rows deleted), incremental
    backup s2 (the rows then in state["sums_later"]); state["tool"] is the cluster's PgBackRest."""
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.backup.take import take_backup
    from streamctl.citus import recovery as citus_recovery
    from streamctl.seed.run import SeedOptions, seed

    seed(c.ctx, SeedOptions(scale=0.005, seed=3))
    state["tool"] = PgBackRest(c.ctx, c.backend)
    state["s1"] = take_backup(state["tool"], "full", "s1")
    state["sums_s1"] = platform_sums(c.ctx)
    with c.ctx.pg_connect("coordinator") as conn:
        state["nodes_before"] = citus_recovery.node_addresses(conn)
        ids = [r[0] for r in conn.execute(
            "SELECT content_id FROM content_metadata ORDER BY content_id LIMIT 5").fetchall()]
        conn.execute("DELETE FROM content_metadata WHERE content_id = ANY(%s)", (ids,))
        conn.execute("INSERT INTO genres (genre_id, name) VALUES (32000, 'after-s1')")
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("DELETE FROM user_watch_history WHERE ctid IN (SELECT ctid FROM user_watch_history LIMIT 7)")
    state["s2"] = take_backup(state["tool"], "incr", "s2")
    state["sums_later"] = platform_sums(c.ctx)


def restore_over_a_gap(c: Any, story: dict[str, Any], into: str) -> None:
    """worker-1's WAL after its backup of s2 removed from the repository, then s2 restored into `into`:
    the restore fails naming the node and the first missing segment, leaves no topology file or state of
    `into`, and the original keeps its later rows."""
    import pytest

    from streamctl.backup.pgbackrest import BackupError, repository_path
    from streamctl.backup.restore import Selection, restore_into
    from streamctl.backup.take import list_sets

    s2 = next(s for s in list_sets(story["tool"]) if s.label == "s2")
    w1 = next(n for n in s2.nodes if n.node == "worker-1")
    gone = remove_wal_after(repository_path(c.ctx), w1.stanza, w1.wal_stop)
    assert gone, "no WAL after the backup to remove"
    with pytest.raises(BackupError) as info:
        restore_into(c.ctx, c.backend, Selection(label="s2"), into)
    first_gone = min(p.name[:24] for p in gone)
    assert "worker-1" in info.value.message and f"WAL segment {first_gone} is missing" in info.value.message
    assert not (c.path.parent / f"{into}.yaml").exists()
    assert not (c.ctx.store.root.parent / into).exists()
    assert platform_sums(c.ctx) == story["sums_later"]
