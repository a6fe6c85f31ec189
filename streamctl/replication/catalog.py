"""Every query streamctl makes about logical replication: publication, subscriptions and their table states,
replication slots, WAL positions and lag. The only file that writes this SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql

from streamctl.names import PUBLICATION, RESTORED_MARK, SUBSCRIPTION_PREFIX

Conn = Connection[Any]

# The gateway's dashboard runs these two itself, on short-lived async connections.
PRIMARY_SLOTS = """
SELECT s.slot_name, s.active, pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
       r.state, extract(epoch FROM r.replay_lag)::float8
FROM pg_replication_slots s
LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'logical'
"""

SUBSCRIPTION_WORKER = """
SELECT s.subenabled, bool_or(st.pid IS NOT NULL AND st.relid IS NULL)
FROM pg_subscription s LEFT JOIN pg_stat_subscription st ON st.subid = s.oid
WHERE s.subname = %s
GROUP BY s.subenabled
"""


def _one(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    return conn.execute(query, params).fetchone()  # type: ignore[arg-type]


# -- primary: publication ---------------------------------------------------------------------------------
def published_tables(conn: Conn) -> list[str] | None:
    """The tables of streamctl's publication, sorted; None when the publication does not exist."""
    if _one(conn, "SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)) is None:
        return None
    rows = conn.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,))
    return sorted(r[0] for r in rows.fetchall())


def drop_publication(conn: Conn) -> None:
    """On a node that must not publish (a replica restored from its primary's files)."""
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(PUBLICATION)))


def publish(conn: Conn, tables: tuple[str, ...] | list[str], create: bool) -> None:
    """Create the publication for these tables, or set its tables."""
    verb = "CREATE PUBLICATION {} FOR TABLE {}" if create else "ALTER PUBLICATION {} SET TABLE {}"
    conn.execute(sql.SQL(verb).format(sql.Identifier(PUBLICATION),
                                      sql.SQL(", ").join(sql.Identifier(t) for t in tables)))


# -- replica: subscription --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subscription:
    enabled: bool
    conninfo: str
    slot: str  # its replication slot on the primary


def subscription(conn: Conn, name: str) -> Subscription | None:
    row = _one(conn, "SELECT subenabled, subconninfo, coalesce(subslotname, subname) FROM pg_subscription "
                     "WHERE subname = %s", (name,))
    return Subscription(bool(row[0]), str(row[1]), str(row[2])) if row else None


def table_states(conn: Conn, name: str) -> dict[str, str]:
    """Table -> its state in the subscription (i init, d copying, f/s syncing, r ready)."""
    rows = conn.execute("SELECT c.relname, r.srsubstate FROM pg_subscription_rel r "
                        "JOIN pg_subscription s ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid "
                        "WHERE s.subname = %s", (name,)).fetchall()
    return {r[0]: str(r[1]) for r in rows}


def create_subscription(conn: Conn, name: str, conninfo: str, copy_data: bool = True, slot: str | None = None,
                        ) -> None:
    """copy_data=False: the tables start in state `r` with no initial copy (only for tables known to hold
    the primary's rows already: empty on both sides, or restored with it). `slot`: subscribe through that
    slot, made beforehand on the primary (create_slot), instead of one the subscription makes now."""
    options: list[sql.Composable] = [sql.SQL("copy_data = {}").format(sql.SQL("true" if copy_data else "false"))]
    if slot is not None:
        options += [sql.SQL("create_slot = false"), sql.SQL("slot_name = {}").format(sql.Literal(slot))]
    conn.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(name), sql.Literal(conninfo), sql.Identifier(PUBLICATION), sql.SQL(", ").join(options)))


def drop_subscription(conn: Conn, name: str) -> None:
    """Drops its slot on the publisher too."""
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))


def drop_subscription_only(conn: Conn, name: str) -> None:
    """Drop the subscription without touching the publisher (unreachable): its slot stays there, inactive,
    for `up`'s stray-slot step to drop."""
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))


def any_rows(conn: Conn, tables: tuple[str, ...]) -> bool:
    query = sql.SQL(" OR ").join(sql.SQL("EXISTS (SELECT FROM {})").format(sql.Identifier(t)) for t in tables)
    row = conn.execute(sql.SQL("SELECT ") + query).fetchone()
    return bool(row and row[0])


def empty_tables(conn: Conn, tables: tuple[str, ...]) -> None:
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in tables)))


def set_connection(conn: Conn, name: str, conninfo: str) -> None:
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(sql.Identifier(name), sql.Literal(conninfo)))


def enable(conn: Conn, name: str) -> None:
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))


def refresh(conn: Conn, name: str) -> None:
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION").format(sql.Identifier(name)))


# -- primary: slots and WAL positions ---------------------------------------------------------------------
def slot_active(conn: Conn, slot: str) -> bool | None:
    """Whether a subscriber is connected to the slot; None when there is no such slot."""
    row = _one(conn, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    return None if row is None else bool(row[0])


def slot_pid(conn: Conn, slot: str) -> int | None:
    """The walsender holding the slot now (None: nobody, or no such slot)."""
    row = _one(conn, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    return None if row is None or row[0] is None else int(row[0])


def drop_slot(conn: Conn, slot: str) -> None:
    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def create_slot(conn: Conn, slot: str) -> str:
    """A subscription's logical slot (pgoutput) in the connection's database, made before its subscription;
    returns the WAL position its changes start after."""
    row = _one(conn, "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    return str(row[0]) if row else "0/0"


def drop_every_slot(conn: Conn) -> None:
    """Every replication slot of the server, when none may stay (a replica restored from its primary's files)."""
    conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")


def slot_waits_at(conn: Conn, slot: str, lsn: str) -> bool:
    """The slot exists, no subscriber has used it, and its changes start after `lsn`."""
    row = _one(conn, "SELECT NOT active AND confirmed_flush_lsn = %s::pg_lsn FROM pg_replication_slots "
                     "WHERE slot_name = %s", (lsn, slot))
    return bool(row and row[0])


# -- replica: the mark of a copy restored with its primary ------------------------------------------------
def mark_restored(conn: Conn, lsn: str) -> None:
    """The replica holds the primary's rows as of `lsn`: a replication origin at that position."""
    conn.execute("SELECT pg_replication_origin_create(%s)", (RESTORED_MARK,))
    conn.execute("SELECT pg_replication_origin_advance(%s, %s::pg_lsn)", (RESTORED_MARK, lsn))


def restored_at(conn: Conn) -> str | None:
    """The position the replica's restored rows stand at; None when it was not restored with its primary."""
    row = _one(conn, "SELECT pg_replication_origin_progress(roname, true)::text FROM pg_replication_origin "
                     "WHERE roname = %s", (RESTORED_MARK,))
    return str(row[0]) if row and row[0] is not None else None


def drop_restored_mark(conn: Conn) -> None:
    conn.execute("SELECT pg_replication_origin_drop(%s)", (RESTORED_MARK,))


@dataclass(frozen=True)
class SlotInfo:
    """One of streamctl's subscription slots (`streamctl_sub_*`) on the primary, and the WAL it holds."""

    name: str
    active: bool
    retained_bytes: int  # WAL kept for it: from its restart position to the current one
    lag_bytes: int  # WAL its subscriber has not confirmed
    wal_status: str  # reserved / extended / unreserved / lost (PostgreSQL's words)


def streamctl_slots(conn: Conn) -> list[SlotInfo]:
    """Every logical slot named like streamctl's subscriptions, by name."""
    rows = conn.execute(
        "SELECT slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, "
        "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint, "
        "coalesce(wal_status, '') FROM pg_replication_slots "
        "WHERE slot_type = 'logical' AND slot_name LIKE %s ORDER BY slot_name",
        (SUBSCRIPTION_PREFIX.replace("_", r"\_") + "%",)).fetchall()
    return [SlotInfo(str(r[0]), bool(r[1]), int(r[2]), int(r[3]), str(r[4])) for r in rows]


def wal_keep_limit(conn: Conn) -> str:
    """The primary's max_slot_wal_keep_size as it reports it (-1: slots may keep WAL without bound)."""
    row = _one(conn, "SHOW max_slot_wal_keep_size")
    return str(row[0]) if row else "-1"


def current_lsn(conn: Conn) -> str:
    row = _one(conn, "SELECT pg_current_wal_lsn()")
    return str(row[0]) if row else "0/0"


def bytes_behind(conn: Conn, slot: str, target: str) -> int | None:
    """Bytes the slot's confirmed position is behind WAL position `target` (0 or less: reached it); None
    when there is no such slot or it has confirmed nothing yet."""
    row = _one(conn, "SELECT %s::pg_lsn - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s",
               (target, slot))
    return None if row is None or row[0] is None else int(row[0])


def slot_lag(conn: Conn, slot: str) -> tuple[int, bool, float] | None:
    """(bytes the slot has not confirmed, subscriber connected, walsender replay lag in seconds; 0 when
    caught up); None when there is no such slot."""
    row = _one(conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, s.active, "
                     "extract(epoch FROM r.replay_lag)::float8 FROM pg_replication_slots s "
                     "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s", (slot,))
    return None if row is None else (int(row[0] or 0), bool(row[1]), float(row[2] or 0.0))


# -- either side ------------------------------------------------------------------------------------------
def row_count(conn: Conn, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def slot_sender(conn: Conn, slot: str) -> tuple[bool, Any, str | None] | None:
    """The slot's subscriber connection: (active, when its walsender started, its state), None when no slot."""
    row = _one(conn, "SELECT s.active, a.backend_start, r.state FROM pg_replication_slots s "
                     "LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid "
                     "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s", (slot,))
    return (bool(row[0]), row[1], row[2]) if row else None


def logical_slot_names(conn: Conn) -> set[str]:
    """Every logical slot of the server (on a standby too: Patroni's copies of the permanent ones)."""
    return {str(r[0]) for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'")}


def standbys_behind(conn: Conn, names: list[str]) -> list[str]:
    """The physical standbys among `names` (their application_name) streaming from this primary that have not
    replayed its WAL up to now."""
    rows = conn.execute("SELECT application_name FROM pg_stat_replication WHERE application_name = ANY(%s) "
                        "AND (replay_lsn IS NULL OR replay_lsn < pg_current_wal_lsn())", (names,)).fetchall()
    return sorted(str(r[0]) for r in rows)


def standby_lags(conn: Conn, names: list[str]) -> dict[str, tuple[str, int | None]]:
    """Each physical standby among `names` (its application_name) connected to this primary: its walsender's
    state and the bytes of this primary's WAL it has not replayed yet, read now (Patroni's REST API reports
    positions up to a loop old). Of a standby connected twice (a reconnect), the connection furthest along."""
    rows = conn.execute("SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                        "FROM pg_stat_replication WHERE application_name = ANY(%s) "
                        "ORDER BY state = 'streaming', replay_lsn NULLS FIRST", (names,)).fetchall()
    return {str(name): (str(state), None if lag is None else int(lag)) for name, state, lag in rows}
