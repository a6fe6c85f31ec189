"""High availability on the Docker backend (#27): each Citus group a container per member (the HA member image
streamctl builds from the Citus image, with Patroni), etcd in a container. The worker group's leader container
is `docker kill`ed while a writer inserts through the coordinator: its standby is promoted, writes work again,
pg_dist_node names the new leader by its network name, and every insert acknowledged is there. `up` then
starts the killed member again and it rejoins as a standby; planned switchovers of the worker and the coordinator
hand the lead over (the FDW to the analytics primary follows the coordinator); `scale` adds a worker group of
containers and drains it away again; `down` keeps the volumes, `down --volumes` leaves nothing.

One cluster for the module (coordinator + 1 worker, 1 synchronous standby each; an analytics primary)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from streamctl.backends.docker.ha import LABEL_HA
from streamctl.config.members import Group, ha_groups
from streamctl.ha import rest
from streamctl.ownership import LABEL_INSTANCE
from tests.support.cluster import topology_dict
from tests.support.docker import DockerCluster, cluster_resources, docker_client, unique_cluster, use_image
from tests.support.ha import Writer, dcs_keys, rotate_ha_passwords, rotate_superuser, status_members
from tests.support.images import ensure_citus_image, ensure_test_image
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.docker, pytest.mark.citus]


@pytest.fixture(scope="module")
def cluster() -> Iterator[DockerCluster]:
    citus = ensure_citus_image()
    etcd = free_port_run(2)
    ha = {"standbys": 1, "synchronous": "on", "port": free_port_run(3), "rest_port": free_port_run(6),  # room to scale
          "etcd": {"port": etcd, "peer_port": etcd + 1}}
    data = use_image(topology_dict(cluster=unique_cluster(), backend="docker", citus=True, workers=1,
                                   replicas=0, redis=False, ha=ha), ensure_test_image())
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = citus
    c = DockerCluster.new(data)
    try:
        c.up()
        yield c
    finally:
        c.destroy()


def _group(c: DockerCluster, name: str) -> Group:
    return next(g for g in ha_groups(c.topology) if g.node.name == name)


def _roles(c: DockerCluster, name: str) -> dict[str, str]:
    return {s.name: s.ha_role for s in rest.group_members(_group(c, name).members, c.ctx.ca_path())}


def _wait(what: str, done, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.5)


def _registered(c: DockerCluster, group: int) -> list[tuple[str, int, str]]:
    with c.ctx.pg_connect("coordinator") as conn:
        return [(str(h), int(p), str(r)) for h, p, r in conn.execute(
            "SELECT nodename, nodeport, noderole::text FROM pg_dist_node WHERE groupid = %s ORDER BY 3",
            (group,)).fetchall()]


def test_every_group_is_led_with_a_sync_standby_registered_by_its_network_name(cluster: DockerCluster) -> None:
    c = cluster
    client = docker_client()
    try:
        for g in ha_groups(c.topology):
            roles = _roles(c, g.node.name)
            assert sorted(roles.values()) == ["leader", "sync_standby"], (g.node.name, roles)
            leader = next(name for name, role in roles.items() if role == "leader")
            standby = next(name for name, role in roles.items() if role == "sync_standby")
            assert _registered(c, g.number) == [(leader, 5432, "primary"), (standby, 5432, "secondary")]
            for m in g.members:  # a container and a volume of its own, labelled with this state's instance
                labels = client.containers.get(f"{c.cluster}-{m.name}").labels
                assert labels[LABEL_HA] == "member" and labels[LABEL_INSTANCE] == c.ctx.ownership.instance
                assert client.volumes.get(f"{c.cluster}-{m.name}-data").attrs["Labels"][LABEL_INSTANCE] == \
                    c.ctx.ownership.instance
                ports = client.containers.get(f"{c.cluster}-{m.name}").attrs["HostConfig"]["PortBindings"]
                assert ports["5432/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(m.port)}], ports
        etcd = client.containers.get(f"{c.cluster}-etcd-1")
        assert etcd.status == "running" and etcd.labels[LABEL_INSTANCE] == c.ctx.ownership.instance
        member = client.containers.get(f"{c.cluster}-worker-1")
        assert not any("password" in (e or "").lower() for e in member.attrs["Config"]["Env"] or [])
        assert all("password" not in a for a in member.attrs["Args"] or [])
    finally:
        client.close()
    with c.ctx.pg_connect("coordinator") as conn:  # through the multi-host string: the leader, read-write
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    checks = c.cli.json("verify", "--only", "ha")["checks"]
    assert {(r["check"], r["target"]): r["status"] for r in checks} == {
        ("ha.groups", "coordinator"): "passed", ("ha.groups", "worker-1"): "passed"}, checks
    assert c.up().changed is False  # a second `up` changes nothing


def test_status_json_shows_every_member(cluster: DockerCluster) -> None:
    c = cluster
    nodes = c.cli.json("status")["nodes"]
    groups = ha_groups(c.topology)
    for name, members in status_members(nodes, groups).items():  # the published ports, as clients reach them
        assert [m["port"] for m in members] == [m.port for m in _group(c, name).members], members
    assert all(n["state"] == "running" and n["healthy"] for n in nodes), nodes


def _container_ids(c: DockerCluster) -> dict[str, str]:
    client = docker_client()
    return {m.name: client.containers.get(f"{c.cluster}-{m.name}").id for g in ha_groups(c.topology)
            for m in g.members}


def test_rotating_the_superuser_password_reaches_every_patroni_in_its_container(cluster: DockerCluster) -> None:
    """`rotate-secrets postgres_password` under HA on Docker: each member's patroni.yml rewritten in its
    container and reloaded through its REST API, no container recreated; the old password is refused on every
    member (the standbys replayed the change), each Patroni, its sessions cut, logs in again with the new one,
    and a later `up` changes nothing. Then `rotate-secrets ha_passwords` (Patroni's own users) the same way. The
    failover and switchovers after this test run with the new passwords."""
    c = cluster
    ids = _container_ids(c)
    rotate_superuser(c, c.ctx.ca_path())
    rotate_ha_passwords(c, c.ctx.ca_path())
    assert c.up().changed is False
    assert _container_ids(c) == ids  # the same containers: rewritten in place, none recreated


def test_a_killed_worker_leader_container_fails_over_without_losing_an_acknowledged_write(
        cluster: DockerCluster) -> None:
    c = cluster
    group = _group(c, "worker-1")
    roles = _roles(c, "worker-1")
    old = next(name for name, role in roles.items() if role == "leader")
    standby = next(name for name, role in roles.items() if role == "sync_standby")
    writer = Writer(c.ctx.pg_conninfo("coordinator"))
    writer.start()
    client = docker_client()
    try:
        _wait("the writer's first inserts", lambda: len(writer.acked) >= 10, 60)
        client.containers.get(f"{c.cluster}-{old}").kill()  # SIGKILL: Patroni and PostgreSQL at once
        _wait("inserts failing on the lost worker", lambda: writer.failed > 0, 60)
        _wait("a standby promoted", lambda: _roles(c, "worker-1").get(standby) == "leader", 120)
        _wait("pg_dist_node naming the new leader",
              lambda: (standby, 5432, "primary") in _registered(c, group.number), 60)
        _wait("20 inserts in a row through the coordinator again", lambda: writer.streak >= 20, 90)
    finally:
        writer.stop.set()
        writer.join(10)
        client.close()
    with c.ctx.pg_connect("coordinator") as conn:
        present = {str(r[0]) for r in conn.execute("SELECT content_id FROM content_metadata WHERE title = 'ha'")}
    assert writer.acked and set(writer.acked) <= present, \
        f"{len(set(writer.acked) - present)} of {len(writer.acked)} acknowledged inserts lost"
    status = c.cli.run("status", "--json")
    worker = next(n for n in json.loads(status.stdout)["nodes"] if n["name"] == "worker-1")
    assert status.returncode == 12 and worker["state"] == "degraded", worker
    assert "1 of 2 members' containers running" in worker["detail"], worker
    assert {m["name"]: m["ha_role"] for m in worker["members"]} == {standby: "leader", old: None}

    # `up` starts the killed member's container again: it rejoins as a standby of the new leader
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}["worker-1"] == "start"
    _wait("the old leader streaming again", lambda: _roles(c, "worker-1") == {standby: "leader",
                                                                               old: "sync_standby"}, 120)
    _wait("the old leader registered as a secondary",
          lambda: _registered(c, group.number) == [(standby, 5432, "primary"), (old, 5432, "secondary")], 60)
    checks = c.cli.json("verify", "--only", "ha,citus")["checks"]
    assert {r["status"] for r in checks} <= {"passed", "skipped"}, checks
    assert c.up().changed is False


def test_planned_switchovers_hand_the_lead_over_and_the_fdw_follows_the_coordinator(cluster: DockerCluster) -> None:
    c = cluster
    for name in ("worker-1", "coordinator"):
        group = _group(c, name)
        standby = next(n for n, role in _roles(c, name).items() if role == "sync_standby")
        done = c.cli.json("switchover", name, "--to", standby)
        assert done["new_leader"] == standby and done["leader"] != standby, done
        assert _roles(c, name)[standby] == "leader"
        _wait("pg_dist_node naming the new leader",
              lambda: (standby, 5432, "primary") in _registered(c, group.number), 60)  # noqa: B023
        assert c.cli.sql(name, "SELECT pg_is_in_recovery()") == "f"  # psql runs in the leader's container
    with c.ctx.pg_connect("coordinator") as conn:  # the new coordinator leader reaches the analytics primary
        assert conn.execute("SELECT count(*) > 0 FROM content_metadata WHERE title = 'ha'").fetchone() == (True,)
        assert conn.execute("SELECT count(*) >= 0 FROM analytics.users").fetchone() == (True,)


def test_scale_adds_a_whole_group_of_containers_and_drains_one_away(cluster: DockerCluster) -> None:
    """`scale` under HA on Docker adds a worker as a group of containers (its leader registered by Patroni under
    its network name, shards moved onto it) and removes one as a group: drained through its leader, released
    (Patroni frozen, keys gone from etcd), unregistered, every member's container and volume removed; rows and
    checksums unchanged throughout. It leaves the module's cluster as it found it (one worker group)."""
    c = cluster
    total = "SELECT count(*), sum(hashtext(content_id::text)) FROM content_metadata"
    with c.ctx.pg_connect("coordinator") as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) "
                     "SELECT gen_random_uuid(), 'scale', 'movie' FROM generate_series(1, 200)")
        before = conn.execute(total).fetchone()
    grown = c.cli.json("scale", "--workers", "2")
    assert grown["added"] == ["worker-2"] and grown["moves"] > 0, grown
    c.reload()
    group = _group(c, "worker-2")
    for g in ha_groups(c.topology):
        assert sorted(_roles(c, g.node.name).values()) == ["leader", "sync_standby"], g.node.name
    leader = next(name for name, role in _roles(c, "worker-2").items() if role == "leader")
    _wait("pg_dist_node naming worker-2's leader by its network name",
          lambda: (leader, 5432, "primary") in _registered(c, group.number), 60)
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute(total).fetchone() == before
        assert conn.execute("SELECT count(*) FROM pg_dist_placement WHERE groupid = %s",
                            (group.number,)).fetchone()[0] > 0

    # A shrink interrupted once the group is released (Patroni frozen, keys gone): status names it, `up` resumes
    c.backend.release_group(group.node)
    status = c.cli.run("status", "--json")
    row = next(n for n in json.loads(status.stdout)["nodes"] if n["name"] == "worker-2")
    assert status.returncode == 12 and row["state"] == "degraded" and "Patroni frozen" in row["detail"], row
    c.up()
    assert sorted(_roles(c, "worker-2").values()) == ["leader", "sync_standby"]
    _wait("pg_dist_node naming worker-2's leader again", lambda: any(
        r[2] == "primary" for r in _registered(c, group.number)), 60)

    shrunk = c.cli.json("scale", "--workers", "1")
    assert shrunk["removed"] == ["worker-2"] and shrunk["rows"] == grown["rows"], shrunk
    with c.ctx.pg_connect("coordinator") as conn:
        assert conn.execute(total).fetchone() == before
        assert conn.execute("SELECT count(*) FROM pg_dist_node WHERE groupid = %s",
                            (group.number,)).fetchone() == (0,)
    left = cluster_resources(c.cluster)
    gone = {f"{c.cluster}-{m.name}" for m in group.members}
    assert not gone & set(left["containers"]) and not {f"{v}-data" for v in gone} & set(left["volumes"]), left
    assert dcs_keys(c, group.number) == 0 and dcs_keys(c, 1) > 0  # the other groups' records stay
    c.reload()
    assert c.up().changed is False
    checks = c.cli.json("verify", "--only", "ha,citus")["checks"]
    assert {r["status"] for r in checks} <= {"passed", "skipped"}, checks


def test_down_keeps_the_volumes_and_down_volumes_removes_every_member_etcd_and_volume(
        cluster: DockerCluster) -> None:
    c = cluster
    assert c.cli.run("down").returncode == 0
    left = cluster_resources(c.cluster)
    members = {f"{c.cluster}-{m.name}-data" for g in ha_groups(c.topology) for m in g.members}
    assert left["containers"] == [] and members | {f"{c.cluster}-etcd-1-data"} <= set(left["volumes"]), left
    assert c.cli.run("down", "--volumes", "--yes").returncode == 0
    assert cluster_resources(c.cluster) == {"containers": [], "volumes": [], "networks": []}
