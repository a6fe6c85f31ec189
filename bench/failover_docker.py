"""High availability's figures (#27) on the Docker backend, against the same cluster without HA.

    python bench/failover_docker.py [--runs 5]

Citus on the Citus test image, a coordinator and 1 worker, each group a Patroni leader and 1 standby in
containers of the HA member image, synchronous: on, ttl 20, etcd in a container; a writer inserts through the
coordinator every 50 ms, a new connection each time:
(a) the worker leader's container `docker kill`ed (Patroni and PostgreSQL at once) to the first successful write
    through the coordinator, median of --runs (target <= ttl + 3 s);
(c) acknowledged writes lost over those runs (target 0);
(d) a worker switchover's longest pause between two acknowledged writes and its failed writes;
(e) `up` with HA against without (the member image built beforehand; its build is timed apart).
Between kill runs `up` starts the killed member's container again, so each run starts led and streaming.
The bench's own measurement of (a), (c), (d) is failover.py's (Bench), with Docker's kill and `up`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import free_port_run  # bench/common.py (benchmarks run as scripts)
from failover import TTL, Bench, timed, verdict

from streamctl.backends.docker.backend import DockerBackend
from streamctl.backends.docker.ha_image import member_image
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.ha import rest
from streamctl.readiness import Readiness
from streamctl.runner import Runner
from tests.support.cluster import save_topology, topology_dict
from tests.support.docker import docker_client, remove_cluster_resources, unique_cluster, use_image
from tests.support.ha import Writer
from tests.support.images import ensure_citus_image, ensure_test_image


@contextlib.contextmanager
def docker_cluster(ha: bool) -> Iterator[tuple[ClusterContext, Runner]]:
    extra = {}
    if ha:
        etcd = free_port_run(2)
        extra["ha"] = {"standbys": 1, "synchronous": "on", "ttl": TTL, "port": free_port_run(2),
                       "rest_port": free_port_run(4), "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=True, workers=1, replicas=0,
                                   analytics=False, fdw=False, redis=False, **extra), ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = ensure_citus_image()
    data["gateway"]["enabled"] = False
    work = Path(tempfile.mkdtemp(prefix="sfd-"))
    path = save_topology(work, data)
    ctx = ClusterContext.build(load_topology(path), path)
    try:
        yield ctx, Runner(ctx, DockerBackend(ctx), timeout=180)
    finally:
        remove_cluster_resources(data["cluster"])
        shutil.rmtree(work, ignore_errors=True)


class DockerBench(Bench):
    def settled(self) -> None:
        Runner(self.ctx, DockerBackend(self.ctx), timeout=180).up()
        for g in self.groups.values():
            Readiness(f"{g.node.name} led and streaming", lambda g=g: rest.ready(g.members, self.ca, True),
                      120, interval=0.3).wait()

    def docker_kill(self, run: int) -> float:
        """The worker leader's container killed under write load: seconds to the first write after it."""
        name = f"{self.ctx.topology.cluster}-{self.leader(self.groups['worker-1'])}"
        started: list[float] = []

        def act(writer: Writer) -> float:
            client = docker_client()
            started.append(time.monotonic())
            client.containers.get(name).kill()
            client.close()
            Readiness("a write after the kill", lambda: writer.first_ack_after(started[0]) is not None, 120,
                      interval=0.05).wait()
            return (writer.first_ack_after(started[0]) or started[0]) - started[0]

        seconds: float = self.with_writer(f"dkill-{run}", act)
        self.settled()
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()
    client = docker_client()
    t_image = timed(lambda: member_image(client, ensure_citus_image()))  # 0 when it is built already
    client.close()
    with docker_cluster(ha=False) as (_, plain):
        t_up_plain = timed(plain.up)
    with docker_cluster(ha=True) as (ctx, runner):
        t_up_ha = timed(runner.up)
        bench = DockerBench(ctx)
        bench.settled()
        kills = [bench.docker_kill(i) for i in range(args.runs)]
        w_pause, w_failed = bench.switchover("worker-1")
    a = statistics.median(kills)
    rows = [(f"(a) leader container killed -> first write, median {a:.2f} s (runs "
             f"{' '.join(f'{x:.1f}' for x in kills)}), target <= {TTL + 3} s", a <= TTL + 3),
            (f"(c) acknowledged writes lost {bench.lost}, target 0", bench.lost == 0),
            (f"(d) worker switchover: longest pause {w_pause:.2f} s, {w_failed} failed writes, target <= 2 s and 0",
             w_pause <= 2 and w_failed == 0),
            (f"(e) up: with HA {t_up_ha:.2f} s, without {t_up_plain:.2f} s, ratio {t_up_ha / t_up_plain:.2f}, "
             "target <= 2", t_up_ha <= 2 * t_up_plain)]
    print(f"Docker HA cluster: Citus coordinator + 1 worker, 1 standby per group, synchronous on, ttl {TTL}; "
          f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; member image {t_image:.2f} s "
          "(0 when built already)")
    for text, ok in rows:
        print(f"{text}: {verdict(ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
