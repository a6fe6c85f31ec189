"""`verify` against a real local platform: healthy passes; damage on a replica is found and named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl import names
from streamctl.errors import ExitCode
from streamctl.readiness import Readiness
from streamctl.verify.result import Status
from streamctl.verify.runner import VerifyReport, run_checks
from streamctl.verify.schema import VERIFY_JSON_SCHEMA
from tests.support.cluster import LocalCluster, traversable_tmpdir, write_topology
from tests.support.schema import problems

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPLICA = "analytics-replica-1"
SUB = names.subscription_name(REPLICA)


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalCluster]:
    """One healthy platform for the module (users + history seeded; a trending key), torn down after."""
    directory = traversable_tmpdir()
    cluster = LocalCluster(write_topology(directory, cluster="verify", verify={"checksum_chunk_rows": 500}))
    try:
        cluster.up()
        with cluster.ctx.pg_connect("analytics-primary") as conn:
            conn.execute("INSERT INTO users SELECT gen_random_uuid(), 'user' || i, "
                         "'user' || i || '@example.org', now() - i * interval '1 hour' "
                         "FROM generate_series(1, 3000) i")
            conn.execute("INSERT INTO user_watch_history (user_id, content_id, watched_at, "
                         "duration_watched_seconds) SELECT user_id, gen_random_uuid(), "
                         "now() - g * interval '1 minute', 60 * g FROM users, generate_series(1, 3) g")
        client = cluster.ctx.redis()
        client.zadd(names.trending_key("2024-01-01"), {"00000000-0000-0000-0000-000000000001": 3})
        client.close()
        wait_caught_up(cluster)
        yield cluster
    finally:
        cluster.down(volumes=True)
        shutil.rmtree(directory, ignore_errors=True)


def wait_caught_up(cluster: LocalCluster) -> None:
    """Replica counts equal the primary's (a readiness probe, not a sleep)."""

    def counts(node: str) -> tuple[int, ...]:
        with cluster.ctx.pg_connect(node) as conn:
            return tuple(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                         for t in cluster.topology.analytics.tables)

    Readiness("replica caught up", lambda: counts("analytics-primary") == counts(REPLICA), 60).wait()


def on_replica(cluster: LocalCluster, statement: str, params: tuple[Any, ...] = ()) -> None:
    with cluster.ctx.pg_connect(REPLICA) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def by_target(report: VerifyReport, check: str) -> dict[str, Any]:
    return {r.target: r for r in report.results if r.check == check}


def test_healthy_platform_passes(platform: LocalCluster) -> None:
    report = run_checks(platform.ctx)
    bad = [r for r in report.results if r.status not in (Status.PASSED, Status.SKIPPED)]
    assert report.exit_code is ExitCode.OK, bad
    statuses = {(r.check, r.target): r.status for r in report.results}
    assert statuses[("replication.data", f"{REPLICA}/users")] is Status.PASSED
    assert statuses[("replication.data", f"{REPLICA}/user_watch_history")] is Status.PASSED
    assert statuses[("fdw.counts", "analytics.users")] is Status.PASSED
    assert statuses[("redis.trending", "redis")] is Status.PASSED
    data = by_target(report, "replication.data")[f"{REPLICA}/user_watch_history"].data
    assert data["primary_rows"] == data["replica_rows"] == 9000 and data["chunks"] >= 18


def test_citus_and_mongo_are_skipped_with_a_reason_when_disabled(platform: LocalCluster) -> None:
    report = run_checks(platform.ctx, ["citus", "mongo"])
    assert {r.status for r in report.results} == {Status.SKIPPED}
    assert all("citus.enabled is false" in r.detail for r in report.results if r.check.startswith("citus"))
    assert [r.detail for r in report.results if r.check == "mongo.reviews"] == ["mongo.enabled is false"]


def test_row_deleted_on_replica_is_found(platform: LocalCluster) -> None:
    with platform.ctx.pg_connect(REPLICA) as conn:
        victim = conn.execute("SELECT * FROM user_watch_history ORDER BY history_id "
                              "OFFSET 4321 LIMIT 1").fetchone()
    assert victim is not None
    on_replica(platform, "DELETE FROM user_watch_history WHERE history_id = %s", (victim[0],))
    try:
        report = run_checks(platform.ctx, ["replication.data"])
        assert report.exit_code is ExitCode.CHECK_FAILED
        bad = by_target(report, "replication.data")
        assert bad[f"{REPLICA}/users"].status is Status.PASSED
        hist = bad[f"{REPLICA}/user_watch_history"]
        assert hist.status is Status.FAILED
        assert "user_watch_history: row counts differ: primary 9000, replica 8999" in hist.detail
        rng = hist.data["first_differing_range"]
        assert int(rng["low"][0]) < victim[0] <= int(rng["high"][0])
        assert (rng["primary_rows"], rng["replica_rows"]) == (500, 499)
        assert hist.data["differing_chunks"] == 1
    finally:
        on_replica(platform, "INSERT INTO user_watch_history OVERRIDING SYSTEM VALUE "
                             "VALUES (%s, %s, %s, %s, %s, %s)", tuple(victim))
    assert run_checks(platform.ctx, ["replication.data"]).exit_code is ExitCode.OK


def test_row_changed_on_replica_is_found(platform: LocalCluster) -> None:
    with platform.ctx.pg_connect(REPLICA) as conn:
        user_id, email = conn.execute("SELECT user_id, email FROM users ORDER BY user_id OFFSET 2500 LIMIT 1"
                                      ).fetchone()  # type: ignore[misc]
    on_replica(platform, "UPDATE users SET email = 'changed@example.org' WHERE user_id = %s", (user_id,))
    try:
        report = run_checks(platform.ctx, ["replication"])
        assert report.exit_code is ExitCode.CHECK_FAILED
        users = by_target(report, "replication.data")[f"{REPLICA}/users"]
        assert users.status is Status.FAILED
        assert "users: same row count (3000) but content differs" in users.detail
        rng = users.data["first_differing_range"]
        assert (rng["low"] is None or rng["low"][0] < str(user_id)) and \
            (rng["high"] is None or str(user_id) <= rng["high"][0])
        assert by_target(report, "replication.data")[f"{REPLICA}/user_watch_history"].status is Status.PASSED
        assert {r.status for r in by_target(report, "replication.subscription").values()} == {Status.PASSED}
    finally:
        on_replica(platform, "UPDATE users SET email = %s WHERE user_id = %s", (email, user_id))
    assert run_checks(platform.ctx, ["replication.data"]).exit_code is ExitCode.OK


def test_disabled_subscription_is_found(platform: LocalCluster) -> None:
    on_replica(platform, f"ALTER SUBSCRIPTION {SUB} DISABLE")
    try:
        with platform.ctx.pg_connect("analytics-primary") as conn:
            conn.execute("INSERT INTO users VALUES (gen_random_uuid(), 'late', 'late@example.org', now())")
        report = run_checks(platform.ctx, ["replication"])
        assert report.exit_code is ExitCode.CHECK_FAILED
        subs = by_target(report, "replication.subscription")
        for table in ("users", "user_watch_history"):
            assert subs[f"{REPLICA}/{table}"].status is Status.FAILED
            expected = f"subscription {SUB} is disabled: {table} is not replicating"
            assert subs[f"{REPLICA}/{table}"].detail == expected
        assert by_target(report, "replication.lag")[REPLICA].status is Status.FAILED
        users = by_target(report, "replication.data")[f"{REPLICA}/users"]
        assert users.status is Status.FAILED and "primary 3001, replica 3000" in users.detail
    finally:
        on_replica(platform, f"ALTER SUBSCRIPTION {SUB} ENABLE")
        with platform.ctx.pg_connect("analytics-primary") as conn:
            conn.execute("DELETE FROM users WHERE username = 'late'")
        wait_caught_up(platform)
    assert run_checks(platform.ctx, ["replication"]).exit_code is ExitCode.OK


def test_stray_slot_is_reported_with_the_wal_it_holds_and_up_drops_it(platform: LocalCluster) -> None:
    """An inactive streamctl_sub_* slot no replica owns (a replica removed while streamctl was not looking):
    verify names it with the WAL it keeps on the primary; `up` drops it and says so."""
    ghost = names.subscription_name("analytics-replica-gone")
    with platform.ctx.pg_connect("analytics-primary") as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (ghost,))
        conn.execute("UPDATE users SET email = email")  # WAL the slot now holds
    try:
        report = run_checks(platform.ctx, ["replication.slots"])
        slots = by_target(report, "replication.slots")
        assert report.exit_code is ExitCode.CHECK_FAILED
        stray = slots[ghost]
        assert stray.status is Status.FAILED and "stray" in stray.detail and "up` drops it" in stray.detail
        assert stray.data["owned"] is False and stray.data["active"] is False
        assert stray.data["retained_bytes"] > 0 and f"holds {stray.data['retained_bytes']} bytes" in stray.detail
        assert slots[SUB].status is Status.PASSED and slots[SUB].data["owned"] is True
        bound = slots["analytics-primary"]
        assert bound.status is Status.PASSED and bound.data["max_slot_wal_keep_size"] == "4GB"

        plan = platform.runner.preview()
        assert any(c.step == "stray slots" and c.changes and ghost in c.changes[0]
                   for c in plan.configuration or [])
        result = platform.up()
        assert any(step == "stray slots" and ghost in changes[0] for _, step, changes in result.config_changes)
        after = by_target(run_checks(platform.ctx, ["replication.slots"]), "replication.slots")
        assert ghost not in after and after[SUB].status is Status.PASSED
    finally:
        with platform.ctx.pg_connect("analytics-primary") as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (ghost,)).fetchone():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (ghost,))


def test_cli_json_follows_schema_and_exit_codes(platform: LocalCluster) -> None:
    cli = platform.cli
    ok = cli.run("verify", "--json")
    assert ok.returncode == 0, ok.output
    doc = json.loads(ok.stdout)
    assert problems(doc, VERIFY_JSON_SCHEMA) == []
    assert doc["ok"] is True and doc["summary"]["failed"] == 0 and doc["summary"]["passed"] >= 10

    on_replica(platform, "DELETE FROM users WHERE user_id = "
                         "(SELECT user_id FROM users ORDER BY user_id LIMIT 1)")
    try:
        bad = cli.run("verify", "--only", "replication.data", "--json")
        assert bad.returncode == int(ExitCode.CHECK_FAILED)
        doc = json.loads(bad.stdout)
        assert problems(doc, VERIFY_JSON_SCHEMA) == []
        failing = [c["target"] for c in doc["checks"] if c["status"] == "failed"]
        assert f"{REPLICA}/users" in failing
        table = cli.run("verify", "--only", "replication.data")
        assert table.returncode == 8 and "failed" in table.stdout and "users" in table.stdout
    finally:
        # the cascade removed the user's history on the replica too: rebuild both from the primary's rows
        resync_replica(platform)


def resync_replica(cluster: LocalCluster) -> None:
    """Make the replica's tables equal to the primary's again (copy through the client)."""
    with cluster.ctx.pg_connect("analytics-primary") as p, cluster.ctx.pg_connect(REPLICA) as r:
        r.execute("SET session_replication_role = replica")  # no FK triggers: rows arrive table by table
        for table in cluster.topology.analytics.tables:
            rows = p.execute(f"SELECT * FROM {table}").fetchall()
            r.execute(f"DELETE FROM {table}")
            with r.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    assert run_checks(cluster.ctx, ["replication.data"]).exit_code is ExitCode.OK


def test_check_that_cannot_run_exits_9(platform: LocalCluster) -> None:
    replica = platform.ctx.node(REPLICA)
    platform.backend.stop(replica)
    try:
        report = run_checks(platform.ctx, ["replication.data", "replication.lag"])
        assert {r.status for r in report.results} == {Status.ERROR}
        assert report.exit_code is ExitCode.CHECK_ERROR
        assert all("cannot connect to analytics-replica-1" in r.detail for r in report.results)
    finally:
        platform.up()
        wait_caught_up(platform)


def test_disabled_roles_are_skipped_never_passed(make_cluster: Any) -> None:
    cluster = make_cluster(cluster="bare", analytics=False, redis=False)
    cluster.up()
    report = run_checks(cluster.ctx)
    assert report.exit_code is ExitCode.OK
    by_check = {r.check: r for r in report.results if r.target == "-"}
    for check, reason in [("replication.data", "analytics.enabled is false"),
                          ("fdw.counts", "fdw.enabled is false"),
                          ("redis.trending", "redis.enabled is false"),
                          ("mongo.reviews", "mongo.enabled is false"),
                          ("citus.skew", "metadata.citus.enabled is false")]:
        assert by_check[check].status is Status.SKIPPED and by_check[check].detail == reason
    passed = [(r.check, r.target) for r in report.results if r.status is Status.PASSED]
    assert {target for _check, target in passed} == {"coordinator", "ca"}  # ca: tls.expiry of the cluster CA
    assert ("nodes.reachable", "coordinator") in passed and ("tls.required", "coordinator") in passed


def test_trending_is_skipped_without_analytics_even_when_seeded(make_cluster: Any) -> None:
    """Trending sets come from the watch history: without analytics, `seed` writes none, so their absence
    is no defect (the seeded catalogue used to make the check fail)."""
    from streamctl.seed.run import SeedOptions, seed

    cluster = make_cluster(cluster="notrend", analytics=False, redis=True)
    cluster.up()
    seed(cluster.ctx, SeedOptions(scale=0.002, seed=3))
    report = run_checks(cluster.ctx, ["redis.trending"])
    [result] = report.results
    assert result.status is Status.SKIPPED
    assert result.detail == "no watch history to derive trending from (analytics.enabled is false)"
    assert report.exit_code is ExitCode.OK
