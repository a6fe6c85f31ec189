"""The whole platform on a three-host Swarm (Docker-in-Docker, tests/support/dind.py), through what Swarm does
on its own. One Swarm and one cluster are shared by the scenarios, which run in this order:

1. Citus coordinator + 2 workers, the analytics primary and its replica on different hosts, FDW reading
   from the replica, Redis, TLS on: `up` (the Citus nodes' password from a Swarm secret), `seed`, `verify`,
   and a second `up` that changes nothing.
2. The replica's, the coordinator's and a worker's task containers are killed one after another; each
   time, without `up`, new rows reach the replica, the coordinator answers Citus and FDW queries and
   `verify` passes (pg_hba admits the cluster's overlay subnet, not one task's address).
3. Guards: an image of another PostgreSQL major, a placement away from a node's pin, a port taken on the
   target host: each refused naming the node and host, nothing changed.
4. A drained host: its pinned worker stays there, `up` converges the rest and exits 14 naming it.
5. A frozen host (its engine paused): `status` and `verify` name it and its nodes, `up` converges the rest
   and exits 14 naming it; once it is back, `up` and `verify` pass with every Citus row still there.
6. A shrinking `scale` removes the leaving worker's volume on the host that held it.
7. `down --volumes` leaves no streamctl volume on any host.

Marked `multihost`: scripts/test runs these in their own pytest phase, after the other tests.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from streamctl.readiness import Readiness
from tests.support.cli import Cli
from tests.support.cluster import traversable_tmpdir
from tests.support.dind import DindNode, DindSwarm, kill_task, running_host, swarm_cli, task_ids
from tests.support.docker import example_topology
from tests.support.images import ensure_citus_image
from tests.support.ports import free_port
from tests.support.swarm import distributed_counts, registered

pytestmark = [pytest.mark.docker, pytest.mark.multihost]

# db-1 (manager): coordinator, primary, Redis; db-2: worker-1; db-3: worker-2 and the replica.
PLACEMENT = {
    "roles": {"coordinator": ["node.role == manager"], "redis": ["node.role == manager"],
              "analytics_primary": ["node.role == manager"],
              "worker": ["node.labels.streamctl.role == worker"]},
    "nodes": {"worker-1": ["node.hostname == db-2"], "worker-2": ["node.hostname == db-3"],
              "analytics-replica-1": ["node.hostname == db-3"]},
}


@pytest.fixture(scope="module")
def swarm(shared_swarm: DindSwarm) -> Iterator[DindSwarm]:
    """The shared Swarm, its hosts but the manager labelled for the workers' placement (unlabelled after)."""
    _label_workers(shared_swarm, {"streamctl.role": "worker"})
    try:
        yield shared_swarm
    finally:
        _label_workers(shared_swarm, {})


def _label_workers(swarm: DindSwarm, labels: dict[str, str]) -> None:
    manager = swarm.manager.client()
    try:
        for node in swarm.nodes[1:]:
            host = manager.nodes.get(node.swarm_id)
            host.update({**host.attrs["Spec"], "Labels": labels})
    finally:
        manager.close()


@pytest.fixture(scope="module")
def cli(swarm: DindSwarm) -> Iterator[Cli]:
    data = example_topology("topology.yaml", citus_image=ensure_citus_image(), backend="local", bind="0.0.0.0",
                            placement=PLACEMENT)
    data["fdw"]["source"] = "analytics-replica-1"
    data["gateway"]["enabled"] = False
    with swarm_cli(swarm, traversable_tmpdir(), data) as c:
        yield c


# -- helpers --------------------------------------------------------------------------------------
def _rows(cli: Cli, node: str, table: str) -> int:
    return int(cli.sql(node, f"SELECT count(*) FROM {table}"))


def _add_user(cli: Cli, tag: str) -> None:
    cli.sql("analytics-primary", "INSERT INTO users (user_id, username, email) VALUES "
                                 f"(gen_random_uuid(), 'heal-{tag}', 'heal-{tag}@example.test')")


def _until(what: str, check: Any, timeout: float = 120.0) -> None:
    def ok() -> bool:
        return bool(check())

    Readiness(what, ok, timeout, interval=1.0).wait()


def _until_host(swarm: DindSwarm, host: DindNode, state: str) -> None:
    """Until the Swarm manager sees `host` in `state` (down, ready)."""
    manager = swarm.manager.client()
    try:
        _until(f"the manager to see {host.hostname} {state}",
               lambda: manager.nodes.get(host.swarm_id).attrs["Status"]["State"] == state, 120.0)
    finally:
        manager.close()


def _verify(cli: Cli) -> subprocess.CompletedProcess[str]:
    return cli.run("verify", "--json")


def _heals(cli: Cli, tag: str) -> None:
    """Without `up`: a new row reaches the replica, Citus and FDW answer through the coordinator, verify
    passes (each awaited: the replaced task needs a few seconds to pass its health check)."""
    _add_user(cli, tag)
    _until(f"the row of {tag} on the replica",
           lambda: cli.run("psql", "analytics-replica-1", "--", "-At", "-c",
                           f"SELECT count(*) FROM users WHERE username = 'heal-{tag}'").stdout.strip() == "1")
    _until("the coordinator's FDW query", lambda: cli.run(
        "psql", "coordinator", "--", "-At", "-c", f"SELECT count(*) FROM analytics.users WHERE username = "
                                                  f"'heal-{tag}'").stdout.strip() == "1")
    _until("the coordinator's Citus query", lambda: cli.run(
        "psql", "coordinator", "--", "-At", "-c", "SELECT count(*) FROM content_metadata").returncode == 0)
    _verify_passes(cli, tag)


def _verify_passes(cli: Cli, after: str) -> None:
    """verify, again until it passes (no `up` in between): a replaced task needs a few seconds before every
    check can reach it, and on a loaded machine a login through three nested engines can miss its 5 s
    connect timeout. The last report is shown when it never passes."""
    last: dict[str, str] = {}

    def verified() -> bool:
        proc = _verify(cli)
        last["out"] = proc.stdout[-4000:] + proc.stderr[-1000:]
        return proc.returncode == 0

    try:
        _until("verify to pass", verified, 240.0)
    except Exception as exc:  # the wait's own error: show verify's last report
        pytest.fail(f"verify did not pass after {after}: {exc}\n{last.get('out')}")


def _volumes(swarm: DindSwarm, cluster: str) -> dict[str, list[str]]:
    out = {}
    for node in swarm.nodes:
        nested = node.client()
        try:
            out[node.hostname] = sorted(v.name for v in nested.volumes.list() if v.name.startswith(cluster))
        finally:
            nested.close()
    return out


def _fingerprints(swarm: DindSwarm, cluster: str) -> dict[str, str]:
    manager = swarm.manager.client()
    try:
        return {s.name: (s.attrs["Spec"].get("Labels") or {}).get("io.streamctl.fingerprint", "")
                for s in manager.services.list(filters={"label": f"io.streamctl.cluster={cluster}"})}
    finally:
        manager.close()


# -- the scenarios, in order ----------------------------------------------------------------------
def test_platform_comes_up_over_three_hosts(cli: Cli, swarm: DindSwarm) -> None:
    cli.ok("up")
    where = {n: running_host(swarm, f"{cli.cluster}-{n}").hostname
             for n in ("coordinator", "worker-1", "worker-2", "analytics-primary", "analytics-replica-1", "redis")}
    assert where == {"coordinator": "db-1", "worker-1": "db-2", "worker-2": "db-3", "analytics-primary": "db-1",
                     "analytics-replica-1": "db-3", "redis": "db-1"}
    assert registered(cli) == [f"{cli.cluster}-worker-1", f"{cli.cluster}-worker-2"]
    # pg_hba admits the cluster's private overlay, which no standalone container can join
    manager = swarm.manager.client()
    try:
        net = manager.api.inspect_network(f"{cli.cluster}-overlay")
    finally:
        manager.close()
    assert net["Attachable"] is False
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    assert subnet in cli.sql("analytics-primary", "SELECT pg_read_file(current_setting('hba_file'))")
    # the Citus nodes get the password from a Swarm secret (the Citus image's entrypoint takes the _FILE form)
    manager = swarm.manager.client()
    try:
        worker = manager.services.get(f"{cli.cluster}-worker-1").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    finally:
        manager.close()
    assert worker["Image"].startswith(cli.data["metadata"]["workers"]["image"])
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in worker["Env"]
    cli.ok("seed", "--scale", "0.01")
    _verify_passes(cli, "the first seed")
    assert not cli.json("up")["changed"]  # a second up is a no-op


@pytest.mark.parametrize("node", ["analytics-replica-1", "coordinator", "worker-1"])
def test_a_replaced_task_is_admitted_without_up(cli: Cli, swarm: DindSwarm, node: str) -> None:
    kill_task(swarm, f"{cli.cluster}-{node}")
    _heals(cli, node)


def test_guards_refuse_before_any_change(cli: Cli, swarm: DindSwarm) -> None:
    before = _fingerprints(swarm, cli.cluster)
    original = json.loads(json.dumps(cli.data))
    # another PostgreSQL major (an image declaring PG_MAJOR=14) for the populated coordinator
    manager = swarm.manager.client()
    try:
        dockerfile = f"FROM {cli.data['metadata']['coordinator']['image']}\nENV PG_MAJOR=14\n"
        manager.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="streamctl-test/pg-other:14", rm=True)
    finally:
        manager.close()
    try:
        cli.data["metadata"]["coordinator"]["image"] = "streamctl-test/pg-other:14"
        cli.save()
        proc = cli.run("up")
        assert proc.returncode == 10, proc.stderr
        assert "coordinator" in proc.stderr and "db-1" in proc.stderr and "PostgreSQL 15" in proc.stderr, proc.stderr

        # placement away from worker-1's pinned host
        cli.data = json.loads(json.dumps(original))
        cli.data["placement"]["nodes"]["worker-1"] = ["node.hostname == db-3"]
        cli.save()
        proc = cli.run("up")
        assert proc.returncode == 4, proc.stderr
        assert "worker-1 is pinned to db-2" in proc.stderr, proc.stderr

        # a port taken on Redis's host (db-1) by a container there
        taken = free_port()
        nested = swarm.manager.client()
        try:
            blocker = nested.containers.run(cli.data["redis"]["image"], ["redis-server", "--port", "6379"],
                                            detach=True, ports={"6379/tcp": taken}, labels={"io.streamctl.test": "1"})
        finally:
            nested.close()
        try:
            _until("the blocking container to listen", lambda: _listens(swarm.manager.ip, taken), 30.0)
            cli.data = json.loads(json.dumps(original))
            cli.data["redis"]["port"] = taken
            cli.save()
            proc = cli.run("up")
            assert proc.returncode == 4, proc.stderr
            assert f"redis.port: {taken} is already taken on db-1" in proc.stderr, proc.stderr
        finally:
            blocker.remove(force=True)
    finally:
        cli.data = original
        cli.save()
    assert _fingerprints(swarm, cli.cluster) == before  # no service was changed
    cli.ok("up")


def _listens(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _set_availability(swarm: DindSwarm, node_id: str, availability: str) -> None:
    manager = swarm.manager.client()
    try:
        host = manager.nodes.get(node_id)
        host.update({**host.attrs["Spec"], "Availability": availability})
    finally:
        manager.close()


def test_a_drained_host_keeps_its_node_and_the_rest_converges(cli: Cli, swarm: DindSwarm) -> None:
    """Draining worker-1's host stops its task there and, pinned, it may start nowhere else: `up` converges
    the rest and exits 14 naming it, `status` says where it is pinned, no volume is made elsewhere."""
    before = distributed_counts(cli)
    drained = swarm.node("db-2")
    service = f"{cli.cluster}-worker-1"
    _set_availability(swarm, drained.swarm_id, "drain")
    try:
        _until("worker-1's task to stop on the drained host", lambda: not task_ids(swarm, service), 120.0)
        proc = cli.run("up")
        assert proc.returncode == 14, proc.stdout + proc.stderr
        assert "worker-1 is pinned to db-2" in proc.stderr and "drain" in proc.stderr, proc.stderr
        rows = {r["name"]: r for r in json.loads(cli.run("status", "--json").stdout)["nodes"]}
        assert "db-2" in rows["worker-1"]["detail"] and "drain" in rows["worker-1"]["detail"], rows["worker-1"]
        assert rows["worker-2"]["healthy"], rows["worker-2"]
        for node in swarm.nodes:
            if node.hostname != "db-2":  # no empty volume was made for it anywhere else
                assert f"{cli.cluster}-worker-1-data" not in _volumes(swarm, cli.cluster)[node.hostname]
    finally:
        _set_availability(swarm, drained.swarm_id, "active")
    _until("up to converge with db-2 active", lambda: cli.run("up").returncode == 0, 300.0)
    assert running_host(swarm, service).hostname == "db-2"
    assert distributed_counts(cli) == before


def test_a_frozen_host_is_named_and_the_rest_converges(cli: Cli, swarm: DindSwarm) -> None:
    before = distributed_counts(cli)
    frozen = swarm.node("db-3")  # worker-2 and the replica
    subprocess.run(["docker", "pause", frozen.container], check=True, capture_output=True)
    try:
        _until_host(swarm, frozen, "down")
        proc = cli.run("status", "--json")
        assert proc.returncode == 12, proc.stderr  # some nodes unhealthy
        rows = {r["name"]: r for r in json.loads(proc.stdout)["nodes"]}
        for name in ("worker-2", "analytics-replica-1"):
            assert "db-3" in rows[name]["detail"] and not rows[name]["healthy"], rows[name]
        assert rows["worker-1"]["healthy"] and rows["coordinator"]["healthy"], rows
        proc = cli.run("verify", "--json")  # every check, each bounded by its connect timeouts
        assert proc.returncode == 8, proc.stdout + proc.stderr
        reach = {c["target"]: c for c in json.loads(proc.stdout)["checks"] if c["check"] == "nodes.reachable"}
        for name in ("worker-2", "analytics-replica-1"):
            assert reach[name]["status"] == "failed", reach
            assert "Swarm host db-3, where analytics-replica-1, worker-2 are pinned" in reach[name]["detail"], reach
        assert reach["worker-1"]["status"] == "passed", reach
        proc = cli.run("up")
        assert proc.returncode == 14, proc.stdout + proc.stderr
        assert "worker-2 is pinned to db-3" in proc.stderr, proc.stderr
        assert "analytics-replica-1 is pinned to db-3" in proc.stderr, proc.stderr
    finally:
        subprocess.run(["docker", "unpause", frozen.container], check=False, capture_output=True)
    _until_host(swarm, frozen, "ready")
    _until("up to converge with db-3 back", lambda: cli.run("up").returncode == 0, 300.0)
    assert running_host(swarm, f"{cli.cluster}-worker-2").hostname == "db-3"  # nothing was moved
    assert distributed_counts(cli) == before
    _heals(cli, "after-freeze")


def test_a_shrinking_scale_removes_the_volume_on_its_host(cli: Cli, swarm: DindSwarm) -> None:
    """A worker added on another host and removed again: its shards move back, its volume goes from the host
    that held it (removed there by a one-shot task), nothing is left recorded."""
    before = distributed_counts(cli)
    cli.ok("scale", "--workers", "3", "--json")
    host = running_host(swarm, f"{cli.cluster}-worker-3").hostname
    assert host in ("db-2", "db-3")  # placed by the workers' role constraint, away from the manager
    volume = f"{cli.cluster}-worker-3-data"
    assert volume in _volumes(swarm, cli.cluster)[host]
    cli.ok("scale", "--workers", "2", "--json")
    assert all(volume not in names for names in _volumes(swarm, cli.cluster).values())
    rows = json.loads(cli.run("status", "--json").stdout)["nodes"]
    assert not [r for r in rows if r["state"] == "volume left"], rows  # nothing left recorded
    assert registered(cli) == [f"{cli.cluster}-worker-1", f"{cli.cluster}-worker-2"]
    assert distributed_counts(cli) == before


def test_down_volumes_leaves_no_volume_on_any_host(cli: Cli, swarm: DindSwarm) -> None:
    """Every volume goes, an orphan's too: a worker the topology no longer declares carries no image, so its
    volume's one-shot removal task runs the image its service ran."""
    cli.ok("scale", "--workers", "3")
    host = running_host(swarm, f"{cli.cluster}-worker-3").hostname
    cli.data = yaml.safe_load(cli.path.read_text())
    cli.data["metadata"]["workers"]["count"] = 2  # worker-3 is an orphan now
    cli.save()
    assert f"{cli.cluster}-worker-3-data" in _volumes(swarm, cli.cluster)[host]
    assert all(_volumes(swarm, cli.cluster)[h] for h in ("db-1", "db-2", "db-3"))
    cli.ok("down", "--volumes", "--yes")
    assert _volumes(swarm, cli.cluster) == {"db-1": [], "db-2": [], "db-3": []}
