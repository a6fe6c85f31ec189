"""`seed` on a real local cluster (PostgreSQL primary + replica, plain-PostgreSQL coordinator, Redis)."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest

from streamctl import names
from streamctl.errors import BackendError, ExitCode, RefusedError
from streamctl.seed.postgres import copy_streams
from streamctl.seed.run import SeedOptions, seed
from streamctl.seed.spec import SeedSpec
from tests.support.cli import streamctl

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TODAY = datetime.now(UTC).date()  # pinned once, so two seeds in one test never straddle midnight
ORDERED = {  # every seeded table, in a deterministic order (history ids restart on --reset)
    "coordinator": {"genres": "genre_id", "cast_crew": "person_id", "content_metadata": "content_id",
                    "content_genres": "content_id, genre_id", "content_cast_crew": "content_id, person_id, role",
                    "trending_daily": "content_id, date"},
    "analytics-primary": {"users": "user_id", "user_watch_history": "history_id"},
}


def checksums(c: Any, node: str, tables: dict[str, str]) -> dict[str, str]:
    """md5 of each table's rows in a fixed order: equal checksums, equal data."""
    with c.ctx.pg_connect(node) as conn:
        return {t: conn.execute(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY {order}), '')) "
                                f"FROM {t} x").fetchone()[0]  # type: ignore[index]
                for t, order in tables.items()}


def all_checksums(c: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for node, tables in ORDERED.items():
        out.update(checksums(c, node, tables))
    return out


def count(c: Any, node: str, table: str) -> int:
    with c.ctx.pg_connect(node) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def test_seed_is_consistent_across_stores_and_replicated(make_cluster: Any) -> None:
    c = make_cluster()
    c.up()
    spec = SeedSpec(0.004, 11, TODAY)
    report = seed(c.ctx, SeedOptions(scale=spec.scale, seed=spec.seed, as_of=TODAY))

    # row counts follow the scale
    assert count(c, "coordinator", "content_metadata") == spec.titles == 40
    assert count(c, "analytics-primary", "users") == spec.users == 200
    assert count(c, "analytics-primary", "user_watch_history") == spec.events == 4000
    assert count(c, "coordinator", "genres") == 22
    rows = {t.table: t.rows for t in report.tables}
    assert rows["user_watch_history"] == 4000 and rows["content_cast_crew"] == count(c, "coordinator",
                                                                                     "content_cast_crew")
    assert ("reviews", "mongo is disabled in the topology") in report.skipped

    # every watch event points at a title in the catalogue (another database: compare the sets)
    with c.ctx.pg_connect("coordinator") as coord, c.ctx.pg_connect("analytics-primary") as primary:
        titles = {r[0] for r in coord.execute("SELECT content_id::text FROM content_metadata")}
        watched = {r[0] for r in primary.execute("SELECT DISTINCT content_id::text FROM user_watch_history")}
        assert watched and watched <= titles
        primary.execute("SET TimeZone = 'UTC'")
        per_title = dict(primary.execute("SELECT content_id::text, count(*) FROM user_watch_history GROUP BY 1"))
        daily = {(d, cid): (v, m) for d, cid, v, m in primary.execute(
            "SELECT watched_at::date, content_id::text, count(*), sum(duration_watched_seconds) / 60 "
            "FROM user_watch_history GROUP BY 1, 2")}
        table = {(d, cid): (v, m) for d, cid, v, m in coord.execute(
            "SELECT date, content_id::text, views, watch_time_minutes FROM trending_daily")}
        orphans = primary.execute("SELECT count(*) FROM user_watch_history h WHERE NOT EXISTS "
                                  "(SELECT 1 FROM users u WHERE u.user_id = h.user_id)").fetchone()[0]  # type: ignore[index]
    assert orphans == 0
    assert table == daily  # trending_daily is exactly the history aggregated per day and title

    # Redis counters and today's trending set agree with the history
    r = c.ctx.redis()
    ids = sorted(per_title)
    assert [int(v) for v in r.mget([names.views_key(i) for i in ids])] == [per_title[i] for i in ids]
    today = dict(r.zrange(names.trending_key(TODAY), 0, -1, withscores=True))
    assert today == {cid: float(v) for (d, cid), (v, _) in daily.items() if d == TODAY}
    assert 0 < r.ttl(names.trending_key(TODAY)) <= (c.topology.redis.trending_ttl_days + 1) * 86_400

    # the replica has caught up by the time seed returns: same rows, same checksums
    assert list(report.replicas) == ["analytics-replica-1"]
    tables = ORDERED["analytics-primary"]
    assert checksums(c, "analytics-replica-1", tables) == checksums(c, "analytics-primary", tables)


def test_deterministic_refuses_without_reset_and_reset_reseeds(make_cluster: Any) -> None:
    c = make_cluster()
    c.up()
    options = SeedOptions(scale=0.002, seed=5, as_of=TODAY)
    seed(c.ctx, options)
    first = all_checksums(c)
    assert count(c, "analytics-primary", "user_watch_history") == 2000

    with pytest.raises(RefusedError, match="already holds data"):
        seed(c.ctx, options)
    assert all_checksums(c) == first  # the refusal changed nothing

    seed(c.ctx, SeedOptions(scale=0.002, seed=5, as_of=TODAY, reset=True))
    assert all_checksums(c) == first  # same seed, same data (ids included)

    report = seed(c.ctx, SeedOptions(scale=0.004, seed=6, as_of=TODAY, reset=True))
    other = all_checksums(c)
    assert all(other[t] != first[t] for t in ("content_metadata", "users", "user_watch_history"))
    assert count(c, "analytics-primary", "user_watch_history") == 4000  # twice the scale, twice the rows
    # the reset (TRUNCATE) and the new rows both reached the replica
    assert report.replicas
    assert count(c, "analytics-replica-1", "user_watch_history") == 4000
    tables = ORDERED["analytics-primary"]
    assert checksums(c, "analytics-replica-1", tables) == checksums(c, "analytics-primary", tables)
    r = c.ctx.redis()
    assert len(list(r.scan_iter(match=names.views_key("*")))) == count(
        c, "analytics-primary", "(SELECT DISTINCT content_id FROM user_watch_history) d")


def test_cli_json_summary_and_refusal_exit_code(make_cluster: Any) -> None:
    c = make_cluster()
    c.up()
    args = ["seed", "-f", str(c.path), "--scale", "0.001", "--seed", "3", "--as-of", TODAY.isoformat()]
    result = streamctl(*args, "--json")
    assert result.returncode == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["seed"] == 3 and summary["as_of"] == TODAY.isoformat()
    by_table = {t["table"]: t for t in summary["tables"]}
    assert by_table["user_watch_history"]["rows"] == 1000 and by_table["users"]["rows"] == 50
    assert all(t["seconds"] >= 0 for t in summary["tables"])
    assert summary["replicas"][0]["name"] == "analytics-replica-1"

    again = streamctl(*args)
    assert again.returncode == RefusedError.exit_code == ExitCode.REFUSED == 10, again.stderr


def test_disabled_roles_are_skipped_and_reported(make_cluster: Any) -> None:
    c = make_cluster(analytics=False, redis=False, fdw=False)
    c.up()
    report = seed(c.ctx, SeedOptions(scale=0.001, seed=1, as_of=date(2024, 1, 31)))
    assert {t.table for t in report.tables} == {"genres", "cast_crew", "content_metadata", "content_genres",
                                                "content_cast_crew"}
    skipped = dict(report.skipped)
    assert skipped["users, user_watch_history"] == "analytics is disabled in the topology"
    assert skipped["views:*, trending:daily:*"] == "redis is disabled in the topology"
    assert "reviews" in skipped and report.replicas == {}
    assert count(c, "coordinator", "content_metadata") == 10


def test_a_missing_table_fails_with_a_hint_and_stops_the_load(make_cluster: Any) -> None:
    c = make_cluster(analytics=False, redis=False, fdw=False)
    c.up()
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("DROP TABLE content_cast_crew")
    with pytest.raises(BackendError, match="loading content_cast_crew failed") as failure:
        seed(c.ctx, SeedOptions(scale=0.001, seed=1, as_of=TODAY))
    assert failure.value.hint is not None and "streamctl up" in failure.value.hint
    assert failure.value.exit_code == ExitCode.RUNTIME


class BothStreams(int):
    """A chunk's row count that holds the first stream to count one until another stream has counted one
    too: copy_streams adds it up in the stream that sent the chunk, outside its lock, so the other stream
    is free to take the next chunk meanwhile. Both streams then take chunks, whatever the scheduler does."""

    seen: set[str] = set()
    both = threading.Event()

    def __radd__(self, other: int) -> int:
        if not BothStreams.both.is_set():
            BothStreams.seen.add(threading.current_thread().name)
            if len(BothStreams.seen) >= 2:
                BothStreams.both.set()
            elif not BothStreams.both.wait(120):  # a guard against a hang, not a timing: this is a defect
                raise AssertionError("only one stream ever took a chunk")
        return int(other) + int(self)


def test_copy_streams_load_every_chunk_once_and_stop_on_the_first_error(make_cluster: Any) -> None:
    c = make_cluster(analytics=False, redis=False, fdw=False)
    c.up()
    with c.ctx.pg_connect("coordinator") as one, c.ctx.pg_connect("coordinator") as two:
        one.execute("CREATE TABLE streams_probe (n integer PRIMARY KEY)")
        def chunks() -> Any:
            for k in range(60):
                yield BothStreams(10), "".join(f"{n}\n" for n in range(k * 10, k * 10 + 10))

        reported: list[int] = []
        assert copy_streams((one, two), "streams_probe", ("n",), chunks(), reported.append) == 600
        assert sum(reported) == 600
        assert one.execute("SELECT count(*), count(DISTINCT n), min(n), max(n) FROM streams_probe"
                           ).fetchone() == (600, 600, 0, 599)
        # Both streams took chunks (each its own COPY): the server saw two loading sessions' rows.
        assert one.execute("SELECT count(DISTINCT xmin::text) FROM streams_probe").fetchone()[0] == 2  # type: ignore[index]

        # A row the table refuses fails the load: the error names the table, with the hint; the refused
        # stream's COPY commits nothing (so the load is visibly incomplete).
        dup = [(1, f"{1000 + k}\n") for k in range(20)] + [(1, "5\n")] + [(1, f"{2000 + k}\n") for k in range(200)]
        with pytest.raises(BackendError, match="loading streams_probe failed") as err:
            copy_streams((one, two), "streams_probe", ("n",), iter(dup))
        assert err.value.hint and "--reset" in err.value.hint
        assert one.execute("SELECT count(*) FROM streams_probe WHERE n >= 1000").fetchone()[0] < 220  # type: ignore[index]

        # The producer's own error comes through as itself.
        def broken() -> Any:
            yield 1, "3000\n"
            raise RuntimeError("the generator broke")

        with pytest.raises(RuntimeError, match="the generator broke"):
            copy_streams((one, two), "streams_probe", ("n",), broken())


@pytest.mark.mongo
def test_reviews_reference_seeded_titles_and_reset_empties_them(make_cluster: Any) -> None:
    if shutil.which("mongod") is None:  # a URI alone is not enough: the local backend runs mongod itself
        pytest.skip("this test runs a local cluster with MongoDB and needs mongod on PATH")
    c = make_cluster(mongo=True)
    c.up()
    seed(c.ctx, SeedOptions(scale=0.002, seed=2, as_of=TODAY))
    client = c.ctx.mongo()
    reviews = client[c.topology.mongo.database][names.REVIEWS_COLLECTION]
    docs = list(reviews.find({}, {"_id": 0}))
    assert len(docs) == SeedSpec(0.002).reviews == 100
    with c.ctx.pg_connect("coordinator") as coord, c.ctx.pg_connect("analytics-primary") as primary:
        titles = {r[0] for r in coord.execute("SELECT content_id::text FROM content_metadata")}
        users = {r[0] for r in primary.execute("SELECT user_id::text FROM users")}
    assert {d["content_id"] for d in docs} <= titles
    assert {d["user_id"] for d in docs} | {r["user_id"] for d in docs for r in d["replies"]} <= users
    with pytest.raises(RefusedError):
        seed(c.ctx, SeedOptions(scale=0.002, seed=2, as_of=TODAY))
    seed(c.ctx, SeedOptions(scale=0.001, seed=2, as_of=TODAY, reset=True))
    assert reviews.count_documents({}) == 50


@pytest.mark.citus
def test_seed_loads_distributed_and_reference_tables_through_the_coordinator(make_cluster: Any) -> None:
    c = make_cluster(citus=True, workers=2)
    c.up()
    seed(c.ctx, SeedOptions(scale=0.002, seed=9, as_of=TODAY))
    first = checksums(c, "coordinator", ORDERED["coordinator"])
    assert count(c, "coordinator", "content_metadata") == 20 and count(c, "coordinator", "genres") == 22
    with c.ctx.pg_connect("coordinator") as conn:
        placed = conn.execute("SELECT count(DISTINCT (nodename, nodeport)) FROM citus_shards "
                              "WHERE table_name = 'content_metadata'::regclass AND shard_size >= 0").fetchone()
    assert placed is not None and placed[0] == 2  # titles live on both workers
    seed(c.ctx, SeedOptions(scale=0.002, seed=9, as_of=TODAY, reset=True))  # TRUNCATE across the cluster
    assert checksums(c, "coordinator", ORDERED["coordinator"]) == first


def test_reset_refuses_when_a_user_table_references_a_seeded_one(make_cluster: Any) -> None:
    """No TRUNCATE ... CASCADE: a table of the user's that references `users` makes --reset refuse (exit 10),
    naming it, before anything is emptied; once it is gone the reset works."""
    c = make_cluster(redis=False, fdw=False)
    c.up()
    seed(c.ctx, SeedOptions(scale=0.001, seed=4, as_of=TODAY))
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("CREATE TABLE subscriptions_paid (id int PRIMARY KEY, "
                     "user_id uuid NOT NULL REFERENCES users (user_id))")
        conn.execute("INSERT INTO subscriptions_paid SELECT 1, user_id FROM users LIMIT 1")
    before = all_checksums(c)
    with pytest.raises(RefusedError) as info:
        seed(c.ctx, SeedOptions(scale=0.001, seed=4, as_of=TODAY, reset=True))
    assert info.value.exit_code == ExitCode.REFUSED == 10
    assert "subscriptions_paid" in info.value.message
    assert any(d.startswith("analytics-primary: subscriptions_paid (subscriptions_paid_user_id_fkey) "
                            "references users") for d in info.value.details), info.value.details
    assert all_checksums(c) == before, "the refused reset emptied something"
    assert count(c, "analytics-primary", "subscriptions_paid") == 1

    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("DROP TABLE subscriptions_paid")
    seed(c.ctx, SeedOptions(scale=0.001, seed=4, as_of=TODAY, reset=True))
    assert all_checksums(c) == before  # same seed: the same data again, ids included


def test_a_lock_held_elsewhere_ends_the_reset_with_a_clear_error(
        make_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another session holds a lock on a seeded table: the reset's TRUNCATE waits lock_timeout (set low
    here through STREAMCTL_PG_LOCK_TIMEOUT), then fails naming the wait and the variable, not a hang."""
    import psycopg

    from streamctl.pgconn import LOCK_TIMEOUT_VAR, LockWaitTimeout

    c = make_cluster(redis=False, fdw=False, replicas=0)
    c.up()
    seed(c.ctx, SeedOptions(scale=0.001, seed=2, as_of=TODAY))
    before = count(c, "coordinator", "content_metadata")
    monkeypatch.setenv(LOCK_TIMEOUT_VAR, "1s")
    holder = psycopg.connect(c.ctx.pg_conninfo("coordinator"))  # a transaction left open, as a client might
    try:
        holder.execute("LOCK TABLE content_metadata IN ACCESS SHARE MODE")
        with pytest.raises(LockWaitTimeout) as info:
            seed(c.ctx, SeedOptions(scale=0.001, seed=2, as_of=TODAY, reset=True))
    finally:
        holder.close()
    assert info.value.exit_code == ExitCode.TIMEOUT == 6
    assert "lock timeout" in info.value.message and "cannot empty" in info.value.message
    assert info.value.hint is not None and LOCK_TIMEOUT_VAR in info.value.hint
    assert count(c, "coordinator", "content_metadata") == before  # the TRUNCATE rolled back
