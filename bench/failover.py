"""High availability's figures (#27) on one local HA cluster, against the same cluster without HA.

    STREAMCTL_BENCH_PG_BINDIR=/path/to/citus/bin python bench/failover.py [--runs 5] [--scale 0.1]

Citus, a coordinator and 1 worker, each group a Patroni leader and 1 standby, synchronous: on, ttl 20;
a writer inserts through the coordinator every 50 ms, a new connection each time:
(a) a worker leader's whole member killed (Patroni and PostgreSQL, SIGKILL) to the first successful write
    through the coordinator, median of --runs (target <= ttl + 3 s);
(b) its PostgreSQL alone killed, Patroni alive, median of --runs (target <= 10 s);
(c) acknowledged writes lost over (a) and (b) (target 0);
(d) a worker switchover's longest pause between two acknowledged writes and its failed writes (target
    <= 2 s, 0), a coordinator switchover's (target <= 3 s);
(e) `up` with HA against without (target <= 2x), `seed --scale S` with synchronous standbys against
    without (target <= 1.3x).
Between kill runs `up` brings the killed member back, so each run starts led and streaming. The bindir
needs Citus (STREAMCTL_BENCH_PG_BINDIR, else PATH's); etcd and Patroni as `up` finds them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import free_port, free_port_run, local_cluster  # bench/common.py (benchmarks run as scripts)

from streamctl.backends.local.backend import LocalBackend
from streamctl.config.members import Group, ha_groups
from streamctl.context import ClusterContext
from streamctl.ha import asks, rest
from streamctl.ha.secrets import ha_secrets
from streamctl.readiness import Readiness
from streamctl.runner import Runner
from streamctl.seed.run import SeedOptions, seed
from tests.support.cluster import save_topology, topology_dict
from tests.support.ha import Writer, kill_member

TTL = 20


def writer_topology(name: str, ha: bool) -> Callable[[Path], Path]:
    def write(work: Path) -> Path:
        extra: dict[str, Any] = {}
        if ha:
            etcd = free_port_run(2)
            extra["ha"] = {"standbys": 1, "synchronous": "on", "ttl": TTL, "port": free_port_run(2),
                           "rest_port": free_port_run(4), "etcd": {"port": etcd, "peer_port": etcd + 1}}
        data = topology_dict(cluster=f"{name}{time.time_ns() % 10**6}", citus=True, workers=1, replicas=0,
                             **extra)
        data["gateway"] = {"port": free_port(), "enabled": False}
        if os.environ.get("STREAMCTL_BENCH_PG_BINDIR"):
            data["local"] = {"pg_bindir": os.environ["STREAMCTL_BENCH_PG_BINDIR"]}
        return save_topology(work, data)
    return write


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


class Bench:
    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.ca = ctx.ca_path() if ctx.tls_on else None
        self.groups = {g.node.name: g for g in ha_groups(ctx.topology)}
        self.lost = 0

    def leader(self, group: Group) -> str:
        return next(s.name for s in rest.group_members(group.members, self.ca) if s.ha_role == "leader")

    def settled(self) -> None:
        """`up` (starts what does not run), then every group led with its sync standby streaming."""
        Runner(self.ctx, LocalBackend(self.ctx), timeout=180).up()
        for g in self.groups.values():
            Readiness(f"{g.node.name} led and streaming", lambda g=g: rest.ready(g.members, self.ca, True),
                      120, interval=0.3).wait()

    def with_writer(self, title: str, act: Callable[[Writer], Any]) -> Any:
        """`act` under write load, its figures returned once the writer stopped and the rows it had
        acknowledged counted against the table (`lost`)."""
        writer = Writer(self.ctx.pg_conninfo("coordinator"), title)
        writer.start()
        try:
            Readiness("the writer's first inserts", lambda: len(writer.acked) >= 10, 30).wait()
            figures = act(writer)
        finally:
            writer.stop.set()
            writer.join(30)
        with self.ctx.pg_connect("coordinator") as conn:
            present = {str(r[0]) for r in conn.execute("SELECT content_id FROM content_metadata WHERE title = %s",
                                                       (title,))}
        self.lost += len(set(writer.acked) - present)
        return figures

    def kill(self, run: int, postgres_only: bool) -> float:
        group = self.groups["worker-1"]
        member = self.leader(group)

        def act(writer: Writer) -> float:
            t0 = time.monotonic()
            kill_member(LocalBackend(self.ctx).home.nodes / member, postgres_only)
            Readiness("a write after the kill", lambda: writer.first_ack_after(t0) is not None, 120,
                      interval=0.05).wait()
            return (writer.first_ack_after(t0) or t0) - t0

        seconds: float = self.with_writer(f"kill{int(postgres_only)}-{run}", act)
        self.settled()
        return seconds

    def switchover(self, name: str) -> tuple[float, int]:
        group = self.groups[name]
        password = ha_secrets(self.ctx.store.root)["rest_password"]

        def act(writer: Writer) -> tuple[float, int]:
            t0, failed = time.monotonic(), writer.failed
            asks.switchover(group, None, password, self.ca, True)
            time.sleep(1)  # writes after the change, so the last pause ends
            return writer.longest_pause(t0, time.monotonic()), writer.failed - failed

        figures: tuple[float, int] = self.with_writer(f"switch-{name}", act)
        return figures


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.1)
    args = parser.parse_args()
    load = os.getloadavg()
    with local_cluster("sfp-", writer_topology("fplain", ha=False), timeout=180) as (_, ctx0, plain):
        t_up_plain = timed(plain.up)
        t_seed_plain = timed(lambda: seed(ctx0, SeedOptions(scale=args.scale, seed=1)))
    with local_cluster("sfh-", writer_topology("fha", ha=True), timeout=180) as (_, ctx, runner):
        t_up_ha = timed(runner.up)
        t_seed_ha = timed(lambda: seed(ctx, SeedOptions(scale=args.scale, seed=1)))
        bench = Bench(ctx)
        bench.settled()
        whole = [bench.kill(i, postgres_only=False) for i in range(args.runs)]
        alone = [bench.kill(i, postgres_only=True) for i in range(args.runs)]
        w_pause, w_failed = bench.switchover("worker-1")
        c_pause, _ = bench.switchover("coordinator")
        with contextlib.suppress(Exception):
            bench.settled()
    a, b = statistics.median(whole), statistics.median(alone)
    print(f"local HA cluster: Citus coordinator + 1 worker, 1 standby per group, synchronous on, ttl {TTL}; "
          f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"(a) whole member killed -> first write    median {a:6.2f} s  runs {' '.join(f'{x:.1f}' for x in whole)}"
          f"  (target <= {TTL + 3} s: {verdict(a <= TTL + 3)})")
    print(f"(b) PostgreSQL alone killed -> first write median {b:6.2f} s  runs {' '.join(f'{x:.1f}' for x in alone)}"
          f"  (target <= 10 s: {verdict(b <= 10)})")
    print(f"(c) acknowledged writes lost              {bench.lost:6d}     (target 0: {verdict(bench.lost == 0)})")
    print(f"(d) worker switchover: longest pause {w_pause:5.2f} s, {w_failed} failed writes "
          f"(target <= 2 s, 0: {verdict(w_pause <= 2 and w_failed == 0)}); coordinator switchover gap "
          f"{c_pause:5.2f} s (target <= 3 s: {verdict(c_pause <= 3)})")
    print(f"(e) up: with HA {t_up_ha:6.2f} s, without {t_up_plain:6.2f} s, ratio {t_up_ha / t_up_plain:4.2f} "
          f"(target <= 2: {verdict(t_up_ha <= 2 * t_up_plain)})")
    print(f"    seed --scale {args.scale}: synchronous {t_seed_ha:6.2f} s, without HA {t_seed_plain:6.2f} s, ratio "
          f"{t_seed_ha / t_seed_plain:4.2f} (target <= 1.3: {verdict(t_seed_ha <= 1.3 * t_seed_plain)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
