"""PostgreSQL loader: COPY text chunks through psycopg 3 (never row by row), plus truncate and probes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from streamctl.errors import BackendError, StreamctlError
from streamctl.pgconn import translate_db_error
from streamctl.seed.prefetch import prefetch

Progress = Callable[[int], None]  # called with the rows just written


def copy_chunks(conn: psycopg.Connection[Any], table: str, columns: Sequence[str],
                chunks: Iterable[tuple[int, str]], progress: Progress | None = None,
                commit_rows: int | None = None) -> int:
    """COPY pre-formatted text chunks into `table`; returns the rows written.

    Chunks are generated on a background thread a few chunks ahead (see prefetch), so generating the
    next chunk overlaps with sending this one while memory stays bounded. With `commit_rows`, a new
    COPY (and transaction, on an autocommit connection) starts every that many rows, letting logical
    replicas apply earlier rows while later ones load.
    """
    statement = _copy_statement(table, columns)
    total = 0
    iterator = prefetch(chunks)
    try:
        pending = next(iterator, None)
        while pending is not None:
            with conn.cursor() as cur, cur.copy(statement) as copy:
                in_tx = 0
                while pending is not None and (commit_rows is None or in_tx < commit_rows):
                    rows, text = pending
                    copy.write(text)
                    in_tx += rows
                    total += rows
                    if progress is not None:
                        progress(rows)
                    pending = next(iterator, None)
    except psycopg.Error as exc:
        raise pg_error(f"loading {table} failed", exc) from exc
    finally:
        iterator.close()  # stops the producer thread when the load ends early
    return total


def copy_streams(conns: Sequence[psycopg.Connection[Any]], table: str, columns: Sequence[str],
                 chunks: Iterable[tuple[int, str]], progress: Progress | None = None) -> int:
    """COPY `chunks` into `table` over all of `conns` at once: each connection runs its own COPY (its own
    transaction on an autocommit connection) and takes the next chunk when it is free. One server process
    parses and routes every row of a COPY, and into a Citus coordinator that process is the bound: two
    streams load trending_daily in about 0.6x the time of one (2 cores, 2 workers).

    Returns the rows written. After an error no stream takes another chunk, and the first error is raised
    once all have ended. A COPY the server refused commits nothing (the server reports it at the end of
    that COPY); the other streams' rows stay, as a failed load's earlier commits do: `seed` then refuses
    the half-seeded cluster until --reset.
    """
    statement = _copy_statement(table, columns)
    source = prefetch(chunks)
    lock = threading.Lock()
    failed: list[BaseException] = []
    totals = [0] * len(conns)

    def take() -> tuple[int, str] | None:
        with lock:
            return None if failed else next(source, None)

    def stream(i: int) -> None:
        try:
            with conns[i].cursor() as cur, cur.copy(statement) as copy:
                while (item := take()) is not None:
                    rows, text = item
                    copy.write(text)
                    totals[i] += rows
                    if progress is not None:
                        with lock:
                            progress(rows)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once every stream has stopped
            with lock:
                failed.append(exc)

    threads = [threading.Thread(target=stream, args=(i,), name=f"streamctl-copy-{i}") for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    source.close()  # stops the producer when a stream failed early
    if failed:
        if isinstance(failed[0], psycopg.Error):
            raise pg_error(f"loading {table} failed", failed[0]) from failed[0]
        raise failed[0]
    return sum(totals)


def _copy_statement(table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))


def bulk_session(conn: psycopg.Connection[Any], citus: bool) -> psycopg.Connection[Any]:
    """Set up a session that loads Citus tables; returns it. A no-op without Citus.

    In Citus's default parallel mode, every COPY into a distributed table opens one connection per shard
    (TLS + SCRAM each): with 32 shards that is about half a second per statement before a row moves,
    which dominated the catalogue loads. Sequential mode sends each worker's rows over one connection;
    measured on 2 cores it loads the largest seeded table as fast as parallel mode does.
    """
    if citus:
        conn.execute("SET citus.multi_shard_modify_mode TO 'sequential'")
    return conn


def has_rows(conn: psycopg.Connection[Any], table: str) -> bool:
    try:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        raise pg_error(f"cannot read {table}", exc) from exc
    return bool(row and row[0])


def count_rows(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def referencing_tables(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """Tables outside `tables` with a foreign key into one of them: what a TRUNCATE ... CASCADE would empty
    too, so `seed --reset` refuses instead ("orders (orders_user_fk) references users")."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, c.confrelid::regclass::text FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.confrelid = ANY(%(ours)s::regclass[]) "
        "AND c.conrelid <> ALL(%(ours)s::regclass[]) ORDER BY 1, 2",
        {"ours": [t for t in tables if _exists(conn, t)]}).fetchall()
    return [f"{table} ({name}) references {target}" for table, name, target in rows]


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def truncate(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """Empty `tables` at once; RESTART IDENTITY so a re-seed assigns the same history ids again. Never
    CASCADE: a table that references them and is not among them makes PostgreSQL refuse (see
    `referencing_tables`, checked first) rather than be emptied too."""
    statement = sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
        sql.SQL(", ").join(map(sql.Identifier, tables)))
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        raise pg_error(f"cannot empty {', '.join(tables)}", exc) from exc


def pg_error(what: str, exc: psycopg.Error) -> StreamctlError:
    """Translate a driver error where it enters; a missing table means the schema was never applied, a lock
    wait that ran out names the setting that bounds it."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return translate_db_error(what, exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    hint = None
    if isinstance(exc, psycopg.errors.UndefinedTable):
        hint = "the schema is missing: run `streamctl up` (it applies the schema) and try again"
    elif isinstance(exc, psycopg.errors.UniqueViolation):
        hint = "the table already holds rows: run `streamctl seed --reset`"
    return BackendError(f"{what}: {first}", hint=hint)
