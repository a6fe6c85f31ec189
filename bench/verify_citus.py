"""`bench/verify.py --citus`: every check `verify` runs on a seeded Citus platform, against bare SQL.

On a local cluster it brings up itself (coordinator + 2 Citus workers, 32 shards, analytics primary + 1
replica, FDW, Redis, TLS on, MongoDB off; free ports, temporary directory, torn down at the end), seeded by
`streamctl seed --scale S` (a child process, as a user runs it), replica caught up, then alternating:
  * verify: `run_checks` with every check (those that do not apply say skipped), as `streamctl verify`;
  * bare SQL: the same facts by hand: one connection per node (probe, ssl), a plain-text login refused per
    node, Redis PING/CONFIG, the certificates' expiry; pg_dist_node, placements off active nodes,
    citus_tables, rows per shard (run_command_on_shards) with their nodes and distinct keys per
    distributed table; subscription, slot and one whole-table digest per table on primary and replica (in
    parallel); FDW counts and the join; the trending keys in Redis.
Prints the medians, verify / bare (goal <= 1.5), and the `fdw.join` check's own time from verify's results
(goal < 0.5 s) next to the bare join's. Not a test: never gates CI.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml
from common import free_port, free_port_run, local_cluster, streamctl  # bench/common.py (benchmarks run as scripts)
from cryptography import x509
from verify_bare import bare_fdw_counts, bare_fdw_join, bare_replication, timed  # bench/verify_bare.py

from streamctl import names
from streamctl.config.model import Engine
from streamctl.context import ClusterContext
from streamctl.replication.catchup import wait_for_replicas
from streamctl.seed.run import AUDIENCE_TABLES
from streamctl.verify.fdw import JOIN
from streamctl.verify.runner import run_checks

REPLICA = "analytics-replica-1"


def write_topology(work: Path, bindir: str) -> Path:
    """The default topology's shape with MongoDB off, on free ports."""
    data = {
        "version": 1, "cluster": "bench-verify-citus", "backend": "local", "state_dir": str(work / "state"),
        "metadata": {"citus": {"enabled": True, "shard_count": 32}, "coordinator": {"port": free_port()},
                     "workers": {"count": 2, "port": free_port_run(2)}},
        "analytics": {"primary": {"port": free_port()}, "replicas": [{"name": REPLICA, "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"port": free_port()},
        "local": {"pg_bindir": bindir},
    }
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def seed(topology: Path, scale: float) -> float:
    t0 = time.monotonic()
    streamctl("seed", "-f", str(topology), "--scale", str(scale), "--seed", "42", "--as-of",
              datetime.now(UTC).date().isoformat(), "--json", check=True, timeout=None)
    return time.monotonic() - t0


# -- bare SQL -------------------------------------------------------------------------------------------
def bare_nodes_tls(ctx: ClusterContext) -> None:
    """Per PostgreSQL node: a plain-text login refused, then one TLS connection for version, sessions and
    ssl; Redis: PING, version, no plain port; every deployed certificate's expiry."""
    t = ctx.topology
    for node in t.nodes():
        if node.engine is not Engine.POSTGRES:
            continue
        ep = ctx.endpoint(node.name)
        try:
            psycopg.connect(host=ep.host, port=ep.port, user=t.pg_user, dbname="postgres", sslmode="disable",
                            password=ctx.secrets["postgres_password"], connect_timeout=5).close()
            raise AssertionError(f"{node.name} accepts plain text")
        except psycopg.OperationalError:
            pass
        with ctx.pg_connect(node.name, node.database) as conn:
            row = conn.execute("SELECT current_setting('server_version'), (SELECT count(*) FROM pg_stat_activity), "
                               "current_setting('ssl'), (SELECT version FROM pg_stat_ssl "
                               "WHERE pid = pg_backend_pid())").fetchone()
            assert row is not None and row[2] == "on"
    client = ctx.redis()
    try:
        client.ping()
        client.info("server")
        assert str(client.config_get("port").get("port")) == "0"
        client.config_get("tls-port")
    finally:
        client.close()
    pems = [ctx.tls.ca_file] + [ctx.tls.deployed_cert(n.name) for n in t.nodes() if ctx.managed_tls(n.name)]
    now = datetime.now(UTC)
    for pem in pems:
        assert x509.load_pem_x509_certificate(pem.read_bytes()).not_valid_after_utc > now


def bare_citus(ctx: ClusterContext) -> None:
    """Workers, placements, layouts, and per distributed table rows per shard with their node and the
    number of distinct distribution values: what skew is judged from."""
    with ctx.pg_connect("coordinator") as c:
        c.execute("SELECT nodename, nodeport, isactive, noderole, shouldhaveshards FROM pg_dist_node "
                  "WHERE groupid <> 0").fetchall()
        c.execute("SELECT count(*), count(*) FILTER (WHERE n.nodeid IS NULL OR NOT n.isactive) "
                  "FROM pg_dist_placement p LEFT JOIN pg_dist_node n ON n.groupid = p.groupid "
                  "AND n.noderole = 'primary'").fetchone()
        layouts = c.execute("SELECT table_name::text, citus_table_type, distribution_column, colocation_id, "
                            "shard_count FROM citus_tables").fetchall()
        for table, kind, column, *_ in layouts:
            if kind != "distributed":
                continue
            per_shard = c.execute(
                "SELECT s.nodename, s.nodeport, r.result::bigint FROM run_command_on_shards(%s::regclass, "
                "'SELECT count(*) FROM %%s') r JOIN citus_shards s USING (shardid)", (table,)).fetchall()
            c.execute(f"SELECT count(DISTINCT {column}) FROM {table}").fetchone()
            by_node: dict[tuple[str, int], int] = defaultdict(int)
            for host, port, rows in per_shard:
                by_node[(host, port)] += rows
            assert len(by_node) >= 1


def bare_redis(ctx: ClusterContext) -> None:
    client = ctx.redis()
    try:
        keys = [k for _, k in zip(range(1000), client.scan_iter(match=names.trending_key("*"), count=1000),
                                  strict=False)]
        assert keys, "no trending keys"
        client.zcard(max(keys))
    finally:
        client.close()


def bare_sql(ctx: ClusterContext) -> float:
    """Every fact verify establishes, by hand, one after another; returns the join's own seconds."""
    bare_nodes_tls(ctx)
    bare_citus(ctx)
    bare_replication(ctx)
    bare_fdw_counts(ctx)
    join = timed(lambda: bare_fdw_join(ctx))
    bare_redis(ctx)
    return join


# -- the run ----------------------------------------------------------------------------------------------
def run(scale: float, repeat: int, bindir: str) -> int:
    with local_cluster("streamctl-bench-verify-citus-", lambda work: write_topology(work, bindir)) as (
            topology, ctx, runner):
        t0 = time.monotonic()
        runner.up()
        print(f"up: {time.monotonic() - t0:.1f}s")
        print(f"seed --scale {scale:g}: {seed(topology, scale):.1f}s")
        t0 = time.monotonic()
        wait_for_replicas(ctx, AUDIENCE_TABLES, 900)
        for node in ("analytics-primary", REPLICA):
            with ctx.pg_connect(node) as conn:
                conn.execute("VACUUM ANALYZE users, user_watch_history")
        print(f"replica caught up, analysed: {time.monotonic() - t0:.1f}s")
        return _measure(ctx, repeat)


def _measure(ctx: ClusterContext, repeat: int) -> int:
    times: dict[str, list[float]] = {"verify": [], "bare": [], "fdw.join": [], "bare join": []}
    per_check: dict[str, list[float]] = defaultdict(list)

    def verify() -> None:
        report = run_checks(ctx)
        bad = [(r.check, r.target, r.detail) for r in report.results if r.status.value not in ("passed", "skipped")]
        assert not bad, bad
        spent: dict[str, float] = defaultdict(float)
        for r in report.results:
            spent[r.check] += r.seconds
            if r.status.value == "skipped" and r.check != "mongo.reviews":
                print(f"    skipped {r.check} {r.target}: {r.detail}")
        for check, seconds in spent.items():
            per_check[check].append(seconds)
        times["fdw.join"].append(spent[JOIN])

    def bare() -> None:
        times["bare join"].append(bare_sql(ctx))

    for i in range(repeat):
        order = [("verify", verify), ("bare", bare)]
        for name, fn in order if i % 2 == 0 else reversed(order):
            times[name].append(timed(fn))
            print(f"  run {i + 1} {name}: {times[name][-1]:.2f}s")
    v, b = statistics.median(times["verify"]), statistics.median(times["bare"])
    print(f"verify (every check), median of {repeat}: {v:.2f}s   runs {_runs(times['verify'])}")
    print(f"bare SQL, median of {repeat}: {b:.2f}s   runs {_runs(times['bare'])}")
    print(f"ratio verify / bare SQL: {v / b:.2f} (goal <= 1.5)")
    print(f"fdw.join check (from verify's results): median {statistics.median(times['fdw.join']):.3f}s   "
          f"runs {_runs(times['fdw.join'])} (goal < 0.5 s)")
    print(f"bare join: median {statistics.median(times['bare join']):.3f}s   runs {_runs(times['bare join'])}")
    print("seconds per check (sum over its targets; families run in parallel), median:")
    for check, values in per_check.items():
        print(f"  {check:<26} {statistics.median(values):7.3f}")
    return 0


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "] s"
