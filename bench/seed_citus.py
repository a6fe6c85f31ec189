"""`bench/seed.py --citus`: Citus loads against `psql \\copy`, and `seed` end to end against bare loads.

On a local Citus cluster (1 coordinator + 2 workers, 32 shards, analytics primary + 1 replica, Redis; it
brings it up itself on free ports and tears it down at the end), in alternating rounds:
1. per Citus table: `seed`'s loader (its generator + COPY, as `seed` runs it; trending_daily from the
   primary's history) against `psql \\copy` of the same rows, prepared in a file beforehand, into the same
   distributed table. Goal: loader / \\copy >= 0.8 for every table.
2. `streamctl seed --reset` (child process, every store, replicas caught up) against `psql \\copy` of every
   PostgreSQL table's prepared rows, one table after another, then the replicas caught up.
   Goal: seed / bare <= 1.0.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from common import free_port, free_port_run, streamctl  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.replication.catchup import wait_for_replicas
from streamctl.runner import Runner
from streamctl.seed import jobs, postgres
from streamctl.seed.catalogue import content_index
from streamctl.seed.run import AUDIENCE_TABLES, CATALOGUE_TABLES
from streamctl.seed.spec import SeedSpec

CITUS_TABLES = ("content_metadata", "content_genres", "content_cast_crew", "trending_daily")


def write_topology(work: Path, bindir: str) -> Path:
    data = {
        "version": 1, "cluster": "bench-seed-citus", "backend": "local", "state_dir": str(work / "state"),
        "metadata": {"citus": {"enabled": True, "shard_count": 32}, "coordinator": {"port": free_port()},
                     "workers": {"count": 2, "port": free_port_run(2)}},
        "analytics": {"primary": {"port": free_port()},
                      "replicas": [{"name": "analytics-replica-1", "port": free_port()}]},
        "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"port": free_port()},
        "local": {"pg_bindir": bindir},
    }
    path = work / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Bench:
    def __init__(self, topology: Path, work: Path, scale: float, as_of: str) -> None:
        self.topology, self.work, self.scale, self.as_of = topology, work, scale, as_of
        self.ctx = ClusterContext.build(load_topology(topology), topology)
        self.backend = LocalBackend(self.ctx)
        self.meta = self.ctx.topology.metadata.database
        self.analytics = self.ctx.topology.analytics.database

    # -- helpers ----------------------------------------------------------------------------------
    def psql(self, node: str, database: str, command: str) -> float:
        argv, env = self.backend.psql_argv(self.ctx.node(node), self.ctx.topology.pg_user,
                                           self.ctx.secrets["postgres_password"], database,
                                           ["-v", "ON_ERROR_STOP=1", "-c", command])
        t0 = time.monotonic()
        subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
        return time.monotonic() - t0

    def where(self, table: str) -> tuple[str, str]:
        return ("analytics-primary", self.analytics) if table in AUDIENCE_TABLES else ("coordinator", self.meta)

    def dump(self, table: str) -> Path:
        path = self.work / f"{table}.tsv"
        node, db = self.where(table)
        self.psql(node, db, f"\\copy {table} TO '{path}'")
        return path

    def copy_in(self, table: str) -> float:
        node, db = self.where(table)
        return self.psql(node, db, f"\\copy {table} FROM '{self.work / f'{table}.tsv'}'")

    def empty(self, tables: tuple[str, ...]) -> None:
        with self.ctx.pg_connect("coordinator") as conn:
            postgres.truncate(conn, tuple(t for t in tables if t not in AUDIENCE_TABLES))
        if any(t in AUDIENCE_TABLES for t in tables):
            with self.ctx.pg_connect("analytics-primary") as conn:
                postgres.truncate(conn, AUDIENCE_TABLES)

    def seed(self) -> float:
        t0 = time.monotonic()
        streamctl("seed", "-f", str(self.topology), "--scale", str(self.scale), "--seed", "42", "--as-of", self.as_of,
                  "--reset", "--json", python=os.environ.get("PYTHON"), check=True, timeout=None)
        return time.monotonic() - t0

    # -- 1. per table -----------------------------------------------------------------------------
    def loader_round(self) -> dict[str, float]:
        """seed's own loaders for the catalogue and trending_daily (no Redis), seconds per table."""
        spec = SeedSpec(self.scale, 42, datetime.fromisoformat(self.as_of).date())
        cancel = threading.Event()

        def factory(store: str, table: str, total: int | None) -> jobs.Meter:
            return jobs.Meter(lambda _e: None, cancel, store, table, total)

        results = jobs.load_catalogue(self.ctx, "coordinator", spec, content_index(spec), factory)
        results += jobs.load_aggregates(self.ctx, "analytics-primary", "coordinator", False, factory)
        return {r.table: r.seconds for r in results}

    def copy_round(self) -> dict[str, float]:
        return {t: self.copy_in(t) for t in CATALOGUE_TABLES}

    # -- 2. end to end ----------------------------------------------------------------------------
    def bare_round(self) -> float:
        """Every PostgreSQL table's prepared rows by `psql \\copy`, one after another, replicas caught up."""
        t0 = time.monotonic()
        for table in (*CATALOGUE_TABLES, *AUDIENCE_TABLES):
            self.copy_in(table)
        wait_for_replicas(self.ctx, AUDIENCE_TABLES, 600)
        return time.monotonic() - t0


def run(scale: float, rounds: int, bindir: str) -> int:
    as_of = datetime.now(UTC).date().isoformat()
    work = Path(tempfile.mkdtemp(prefix="streamctl-bench-seed-citus-"))
    work.chmod(0o755)
    topology = write_topology(work, bindir)
    b = Bench(topology, work, scale, as_of)
    runner = Runner(b.ctx, b.backend, timeout=120)
    per_table: dict[str, dict[str, list[float]]] = {"loader": {}, "copy": {}}
    ends: dict[str, list[float]] = {"seed": [], "bare": []}
    try:
        runner.up()
        b.seed()
        for table in (*CATALOGUE_TABLES, *AUDIENCE_TABLES):
            b.dump(table)
        for _ in range(rounds):
            b.empty(CATALOGUE_TABLES)
            for t, s in b.copy_round().items():
                per_table["copy"].setdefault(t, []).append(s)
            b.empty(CATALOGUE_TABLES)
            for t, s in b.loader_round().items():
                per_table["loader"].setdefault(t, []).append(s)
        for _ in range(rounds):
            b.empty((*CATALOGUE_TABLES, *AUDIENCE_TABLES))
            ends["bare"].append(b.bare_round())
            ends["seed"].append(b.seed())
    finally:
        Runner(b.ctx, b.backend).down(volumes=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"Citus loads at scale {scale:g}, {rounds} alternating rounds (busy machine: runs listed)")
    for table in CATALOGUE_TABLES:
        lo, cp = per_table["loader"][table], per_table["copy"][table]
        ratio = statistics.median(cp) / statistics.median(lo)
        mark = " (Citus)" if table in CITUS_TABLES else ""
        print(f"  {table + mark:<28} loader/\\copy speed {ratio:5.2f}   loader {_runs(lo)}   \\copy {_runs(cp)}")
    print("  goal: >= 0.8 for every Citus table")
    ratio = statistics.median(ends["seed"]) / statistics.median(ends["bare"])
    print(f"seed end to end / bare sequential \\copy (replicas caught up in both): {ratio:4.2f}   "
          f"seed {_runs(ends['seed'])}   bare {_runs(ends['bare'])}   goal <= 1.0")
    return 0


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "] s"
