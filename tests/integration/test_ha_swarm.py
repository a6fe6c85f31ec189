"""High availability on Swarm (#27), on a three-host Swarm (Docker-in-Docker, tests/support/dind.py):

1. The HA member image, built on the manager, is put on the other hosts with no registry and through the
   manager's engine only (streamctl/backends/swarm/image_spread.py); a second spread finds it everywhere and
   loads nothing; a host that cannot run the one-shot task is named.
2. A group needing more hosts than the Swarm has is refused with the counts (exit 4), nothing created.
3. One HA cluster (coordinator + 1 worker, 1 synchronous standby each, the analytics primary with 1 synchronous
   standby and one logical replica, 3 etcd members): every group's members on distinct hosts, each group led
   with a sync standby (Patroni's REST API and `status`), the replica subscribed through the analytics members'
   names on the overlay, its slot permanent and held by both members, `verify` passes, a second `up` changes
   nothing; rows inserted on the analytics primary reach the replica before and after a switchover of its
   group; a switchover of the worker group moves pg_dist_node too; `down` then `up` keep every row, each group
   led again; the worker leader's host is frozen while a writer inserts through the
   coordinator: its standby is promoted, writes work again, pg_dist_node names the new leader, every
   acknowledged insert is there, read on the new leader while the host is still frozen; once it returns, one
   primary per group again, the old leader back as a sync standby on the new timeline (rewound, or cloned
   again: services/ha.py), `verify --only ha` passes and no acknowledged insert is missing. Turning ha off (for
   the whole topology, or for the analytics group alone) and rotating postgres_password or ha_passwords are
   refused (exit 10); `ha.loop_wait` changed, the analytics members' services are updated one at a time under
   write load, the standby first and the leader after a switchover;
   `down --volumes` leaves no service or volume on any host.

Marked `multihost`: scripts/test runs these in their own pytest phase."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from streamctl.backends.docker.ha_image import member_image
from streamctl.backends.swarm.image_spread import ImageSpread
from streamctl.backends.swarm.placement import Pin
from streamctl.config.load import load_topology
from streamctl.config.members import ha_groups
from streamctl.config.model import Topology
from streamctl.context import ClusterContext
from streamctl.gateway.app import create_app
from streamctl.ha.secrets import ha_secrets
from streamctl.names import subscription_name
from tests.support import ha as hs
from tests.support.cli import Cli
from tests.support.cluster import topology_dict, traversable_tmpdir
from tests.support.dind import DindSwarm, services, swarm_cli
from tests.support.docker import unique_cluster
from tests.support.gateway import serve
from tests.support.ha import Writer, status_members, wait_until
from tests.support.images import ensure_citus_image
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.docker, pytest.mark.multihost]

NETWORK = "spread-net"
ANALYTICS, REPLICA = hs.ANALYTICS_PRIMARY, hs.ANALYTICS_REPLICA
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def swarm(shared_swarm: DindSwarm) -> DindSwarm:
    return shared_swarm


@pytest.fixture(scope="module")
def manager(swarm: DindSwarm) -> Iterator[Any]:
    client = swarm.manager.client()
    try:
        client.networks.create(NETWORK, driver="overlay", attachable=False, scope="swarm")
        yield client
    finally:
        client.close()


def _pins(swarm: DindSwarm) -> list[Pin]:
    return [Pin(n.swarm_id, n.hostname, n.ip) for n in swarm.nodes]


def _image_ids(swarm: DindSwarm, tag: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for node in swarm.nodes:
        client = node.client()
        try:
            found = client.images.list(name=tag.split(":")[0])
            out[node.hostname] = next((i.id for i in found if tag in i.tags), None)
        finally:
            client.close()
    return out


def test_member_image_reaches_every_host_through_the_manager(swarm: DindSwarm, manager: Any) -> None:
    tag = member_image(manager, ensure_citus_image())
    before = _image_ids(swarm, tag)
    assert before["db-1"] is not None and before["db-2"] is None and before["db-3"] is None, before
    pins = _pins(swarm)
    spread = ImageSpread(manager, "spread", NETWORK, pins[0])
    runners = {p.id: ensure_citus_image() for p in pins}
    start = time.monotonic()
    first = spread.spread(tag, runners, pins)
    took = time.monotonic() - start
    print(f"\nspread of {tag} to 2 hosts: {took:.1f} s; {first}")
    assert set(first) == {"db-2", "db-3"} and all(v.startswith("loaded ") for v in first.values()), first
    assert set(_image_ids(swarm, tag).values()) == {before["db-1"]}  # the same image id everywhere

    start = time.monotonic()
    again = spread.spread(tag, runners, pins)
    print(f"second spread (cached): {time.monotonic() - start:.1f} s; {again}")
    assert again == {"db-2": "present", "db-3": "present"}
    left = [s.name for s in manager.services.list() if "-img" in s.name]
    assert left == [], left  # the feeder and the one-shot tasks are gone


def test_a_host_without_the_runner_image_is_named(swarm: DindSwarm, manager: Any) -> None:
    pins = _pins(swarm)
    tag = member_image(manager, ensure_citus_image())
    spread = ImageSpread(manager, "spread", NETWORK, pins[0])
    runners = {p.id: "streamctl-test/absent:none" for p in pins}
    other = swarm.node("db-2").client()
    try:
        other.images.remove(tag, force=True)
    finally:
        other.close()
    with pytest.raises(Exception) as raised:
        spread.spread(tag, runners, pins[:2], timeout=120.0)
    assert "db-2" in " ".join(getattr(raised.value, "details", [])), raised.value



# -- HA members on Swarm ---------------------------------------------------------------------------------
def _ha_topology(standbys: int, etcd_members: int) -> dict[str, Any]:
    ha = {"standbys": standbys, "synchronous": "on", "port": free_port_run(8), "rest_port": free_port_run(10),
          "etcd": {"members": etcd_members, "port": free_port_run(3), "peer_port": free_port_run(3)}}
    ha["analytics"] = {"standbys": 1}  # its group beside the Citus groups': ha.port and ha.rest_port's runs hold all
    data = topology_dict(cluster=unique_cluster(), backend="swarm", citus=True, workers=1, replicas=1, redis=False,
                         analytics=True, fdw=False, ha=ha, bind="0.0.0.0")
    data.pop("local", None)
    data["metadata"]["coordinator"]["image"] = data["metadata"]["workers"]["image"] = ensure_citus_image()
    data["analytics"]["primary"]["image"] = ensure_citus_image()  # one member image for every group (the replica's too)
    data["gateway"]["enabled"] = False
    return data


def test_too_few_hosts_is_refused_with_the_counts_before_anything_starts(swarm: DindSwarm, manager: Any) -> None:
    data = _ha_topology(standbys=3, etcd_members=1)
    with swarm_cli(swarm, traversable_tmpdir(), data) as c:
        proc = c.run("up")
        assert proc.returncode == 4, proc.output
        said = " ".join(proc.output.split())  # as wrapped for a terminal, or not
        assert "coordinator's group (ha.standbys: 3) has 4 members, which need 4 distinct Swarm hosts, and 3 " \
               "ready, active hosts qualify (db-1, db-2, db-3)" in said, proc.output
        assert services(swarm, c.cluster) == []


@pytest.fixture(scope="module")
def ha_cli(swarm: DindSwarm, manager: Any) -> Iterator[Cli]:
    data = _ha_topology(standbys=1, etcd_members=3)
    with swarm_cli(swarm, traversable_tmpdir(), data) as c:
        start = time.monotonic()
        c.ok("up")
        print(f"\nup with HA on 3 hosts: {time.monotonic() - start:.1f} s")
        yield c


def _ctx(cli: Cli) -> ClusterContext:
    return ClusterContext.build(load_topology(cli.path, env={}, backend="swarm"), cli.path)


def _pinned(ctx: ClusterContext) -> dict[str, Any]:
    return dict(ctx.store.read()["swarm_pins"])


class _Cluster:
    """What tests/support/ha.py's helpers read of a cluster (its context, topology and CLI), for the Swarm one:
    each member reached at its host's address (`ctx.store.pinned()`, which `hs.group_of` reads)."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli

    @property
    def ctx(self) -> ClusterContext:
        return _ctx(self.cli)

    @property
    def topology(self) -> Topology:
        return self.ctx.topology


def _roles(cli: Cli, group: str) -> dict[str, str]:
    """Patroni's roles, asking each member at the address of the host it is pinned to."""
    return hs.ha_roles(_Cluster(cli), group)


def test_members_on_distinct_hosts_each_group_led_with_a_sync_standby(ha_cli: Cli) -> None:
    pins = _pinned(_ctx(ha_cli))
    for names in (["coordinator", "coordinator-2"], ["worker-1", "worker-1-2"], [ANALYTICS, f"{ANALYTICS}-2"],
                  ["etcd-1", "etcd-2", "etcd-3"]):
        assert len({pins[n]["id"] for n in names}) == len(names), pins
    for group in ("coordinator", "worker-1"):
        assert sorted(_roles(ha_cli, group).values()) == ["leader", "sync_standby"], _roles(ha_cli, group)
    c = _Cluster(ha_cli)
    hs.check_analytics_group(c, SLOT)  # a leader and a sync standby; the replica's slot permanent, on both members
    with c.ctx.pg_connect(REPLICA, "analytics_db") as conn:
        (conninfo,) = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", (SLOT,)).fetchone()
    # the members' names on the overlay (their aliases, Patroni's connect_address): the apply worker follows the leader
    assert f"host={ANALYTICS},{ANALYTICS}-2 port=5432,5432" in conninfo, conninfo
    assert "target_session_attrs=primary" in conninfo, conninfo
    # status reaches them too
    members = status_members(ha_cli.json("status")["nodes"], ha_groups(_ctx(ha_cli).topology))
    with serve(create_app(_ctx(ha_cli))) as url:  # the dashboard's HA table too: each member at its host's address
        ha = httpx.get(url + "/api/v1/ops/ha", timeout=30).json()
    assert {g["node"]: [(m["name"], m["ha_role"], m["host"]) for m in g["members"]] for g in ha["groups"]} == {
        node: [(m["name"], m["ha_role"], m["host"]) for m in found] for node, found in members.items()}, ha
    ha_cli.ok("verify")  # a leader per group, standbys streaming, a sync standby, pg_dist_node naming the leaders
    assert set(ha_cli.actions().values()) == {"noop"}  # a second `up` changes nothing


def _leader(cli: Cli, group: str) -> str:
    return next(n for n, r in _roles(cli, group).items() if r == "leader")


def test_the_analytics_replica_receives_rows_across_a_switchover_of_its_primarys_group(ha_cli: Cli) -> None:
    c = _Cluster(ha_cli)
    hs.replication_flows(c, "swarm-before")
    before = _leader(ha_cli, ANALYTICS)
    ha_cli.ok("switchover", ANALYTICS)
    after = _leader(ha_cli, ANALYTICS)
    assert after != before and sorted(_roles(ha_cli, ANALYTICS).values()) == ["leader", "sync_standby"], after
    hs.replication_flows(c, "swarm-after")  # written on the new leader, the subscription reconnected to it
    assert SLOT in hs.member_slots(c, ANALYTICS, before)  # the old leader, a standby now, keeps its copy
    hs.verify_passes(c, "ha,replication")  # each group led; the subscription, its slot, lag and checksums


def test_switchover_then_down_and_up_keep_every_row(ha_cli: Cli) -> None:
    before = _leader(ha_cli, "worker-1")
    ha_cli.ok("switchover", "worker-1")
    after = _leader(ha_cli, "worker-1")
    registered = _coordinator(ha_cli, "SELECT nodename FROM pg_dist_node WHERE groupid = 1 AND noderole = 'primary'")
    assert after != before and registered == after, (before, after, registered)
    rows = _coordinator(ha_cli, "SELECT count(*) FROM content_metadata")
    users = hs.user_ids(_Cluster(ha_cli), ANALYTICS)  # the analytics rows too
    ha_cli.ok("down")
    ha_cli.ok("up")  # it returns once every group is led with a sync standby
    for group in ("coordinator", "worker-1", ANALYTICS):
        # Patroni may drop a standby from sync for a moment afterwards (seen once in CI, on the coordinator's
        # group, 'replica' right after `up` returned; not traced): the group must be led with one again
        wait_until(f"{group} led with a sync standby after down and up",
                   lambda g=group: sorted(_roles(ha_cli, g).values()) == ["leader", "sync_standby"], 60)
    assert _coordinator(ha_cli, "SELECT count(*) FROM content_metadata") == rows
    assert hs.user_ids(_Cluster(ha_cli), ANALYTICS) == users and users


def _coordinator(cli: Cli, query: str) -> Any:
    """One value through the coordinator's group (libpq's multi-host string, a 5 s connect timeout per host)."""
    with psycopg.connect(_ctx(cli).pg_conninfo("coordinator"), autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def test_worker_leaders_host_frozen_under_writes(swarm: DindSwarm, ha_cli: Cli) -> None:
    """Swarm restarts a killed task in place, and its Patroni takes its own leader key back: a host lost is
    what makes a standby lead. The worker leader's host is frozen (its engine and every task on it paused)."""
    writer = Writer(_ctx(ha_cli).pg_conninfo("coordinator"), title="swarm-ha")
    leader = next(n for n, r in _roles(ha_cli, "worker-1").items() if r == "leader")
    host = swarm.node(_pinned(_ctx(ha_cli))[leader]["hostname"])
    writer.start()
    try:
        wait_until("a first acknowledged insert", lambda: writer.streak >= 5)
        frozen = time.monotonic()
        subprocess.run(["docker", "pause", host.container], check=True, capture_output=True)
        try:
            wait_until("a new worker leader", lambda: any(
                r == "leader" and n != leader for n, r in _roles(ha_cli, "worker-1").items()), 180.0)
            wait_until("writes through the coordinator again", lambda: writer.first_ack_after(frozen) is not None
                       and writer.streak >= 10, 180.0)
            pause = writer.longest_pause(frozen, time.monotonic())
            print(f"\nworker leader {leader}'s host {host.hostname} frozen: writes paused {pause:.1f} s at most, "
                  f"{writer.failed} failed, {len(writer.acked)} acknowledged")
        finally:
            try:
                writer.stop.set()
                writer.join(30)
                new = next((n for n, r in _roles(ha_cli, "worker-1").items() if r == "leader"), None)
                registered = _coordinator(ha_cli, "SELECT nodename FROM pg_dist_node WHERE groupid = 1 "
                                                  "AND noderole = 'primary'")
                ids = ",".join(f"'{i}'" for i in writer.acked)
                count = f"SELECT count(*) FROM content_metadata WHERE content_id IN ({ids})"
                frozen_found = _coordinator(ha_cli, count)
            finally:
                subprocess.run(["docker", "unpause", host.container], check=False, capture_output=True)
                back = time.monotonic()
    finally:
        writer.stop.set()
    assert new not in (None, leader) and registered == new, (leader, new, registered)
    # every acknowledged insert, read on the new leader while the old one's host is still frozen
    assert frozen_found == len(writer.acked), (frozen_found, len(writer.acked), writer.failed, _seen(ha_cli, count))
    # Until Patroni runs again on the host that returns, the PostgreSQL it froze still answers as a primary, and
    # reads there are stale (a coordinator's through its old pg_dist_node too): README, "A host that freezes".
    wait_until("one primary per group again", lambda: all(
        len(_primaries(ha_cli, g)) == 1 for g in ("coordinator", "worker-1")), 120.0)
    print(f"the old primaries on the returning host stepped down {time.monotonic() - back:.1f} s after it came back")
    _rejoins(swarm, ha_cli, leader)
    found: list[Any] = []

    def counted() -> bool:  # the group may change leaders once more meanwhile (README): asked until it answers
        try:
            found.append(_coordinator(ha_cli, count))
        except psycopg.Error:
            return False
        return True

    try:
        wait_until("a read through the coordinator after the rejoin", counted, 90.0)
    except AssertionError:
        raise AssertionError(f"no read through the coordinator: {_roles(ha_cli, 'worker-1')}\n"
                             f"{_member_logs(swarm, ha_cli, ('worker-1', 'worker-1-2'))}") from None
    print(f"{leader} rejoined {time.monotonic() - back:.1f} s after its host came back: "
          f"{hs.roles_and_timelines(_Cluster(ha_cli), 'worker-1')}")
    assert found[-1] == len(writer.acked), (found, len(writer.acked), _seen(ha_cli, count))  # none lost


def _member(cli: Cli, group: Any, m: Any, dbname: str = "postgres") -> psycopg.Connection[Any]:
    c = _Cluster(cli)
    return psycopg.connect(host=m.node.host, port=m.port, dbname=dbname, user=c.topology.pg_user, connect_timeout=3,
                           password=c.ctx.secrets["postgres_password"], autocommit=True,
                           **c.ctx.pg_ssl(target=group.node.name))


def _primaries(cli: Cli, name: str) -> list[str]:
    """The members of group `name` whose PostgreSQL answers as a primary (asked each at its host)."""
    group, found = hs.group_of(_Cluster(cli), name), []
    for m in group.members:
        try:
            with _member(cli, group, m) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            continue
        if row is not None and row[0] is False:
            found.append(m.name)
    return found


def _seen(cli: Cli, count: str) -> dict[str, Any]:
    """What each side says: pg_dist_node, Patroni's roles, and each worker member's own count and recovery state."""
    c = _Cluster(cli)
    out: dict[str, Any] = {"pg_dist_node": _coordinator(cli, "SELECT array_agg(nodename || ':' || noderole || ':' "
                                                             "|| isactive) FROM pg_dist_node"),
                           "roles": _roles(cli, "worker-1")}
    group = hs.group_of(c, "worker-1")
    ids = count.split(" IN ", 1)[1]
    for m in group.members:
        try:
            with _member(cli, group, m, group.node.database) as conn:
                conn.execute("SET citus.show_shards_for_app_name_prefixes = '*'")
                shards = [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND "
                                                     "relname ~ '^content_metadata_[0-9]+$'").fetchall()]
                rows = sum(conn.execute(f"SELECT count(*) FROM {s} WHERE content_id IN {ids}").fetchone()[0]
                           for s in shards)
                out[m.name] = (conn.execute("SELECT pg_is_in_recovery()").fetchone(), len(shards), rows)
        except psycopg.Error as e:
            out[m.name] = repr(e)
    return out


def _member_logs(swarm: DindSwarm, cli: Cli, members: tuple[str, ...]) -> str:
    """Every container of each member's service on its host (old tasks too), with its log (pg_controldata's
    lines left out)."""
    out = []
    for member in members:
        host = swarm.node(_pinned(_ctx(cli))[member]["hostname"])
        script = (f"for c in $(docker ps -aq --filter name={member}[.]); do echo \"== $c\"; "
                  "docker inspect -f '{{.Name}} {{.State.Status}} {{.State.StartedAt}} {{.State.FinishedAt}}' $c; "
                  "docker logs --timestamps $c 2>&1 | grep -v 'Z   '; done")
        done = subprocess.run(["docker", "exec", host.container, "sh", "-c", script], capture_output=True, text=True)
        out.append(f"==== {member} on {host.hostname}\n{done.stdout}{done.stderr}")
    return "\n".join(out)


def _rejoins(swarm: DindSwarm, cli: Cli, old: str) -> None:
    """Once its host is back, the old leader follows the new one by itself: rewound by its Patroni, or, when
    pg_rewind fails (it did in some runs: "could not find previous WAL record" at the fork), cloned again
    (remove_data_directory_on_rewind_failure, which `up` keeps on: services/ha.py)."""
    def following() -> bool:
        """Led with a sync standby again, both on one timeline (the old leader rewound onto the new one's; it may
        lead once more afterwards, as Patroni decides), and verify's HA checks pass."""
        seen = hs.roles_and_timelines(_Cluster(cli), "worker-1")
        return sorted(r for r, _ in seen.values()) == ["leader", "sync_standby"] and \
            len({t for _, t in seen.values()}) == 1 and cli.run("verify", "--only", "ha").returncode == 0

    try:
        wait_until(f"{old} back as a standby", following, 240.0)
    except AssertionError as e:
        raise AssertionError(f"{e}: {hs.roles_and_timelines(_Cluster(cli), 'worker-1')}\n"
                             f"{_member_logs(swarm, cli, ('worker-1', 'worker-1-2'))}") from None


def _up_with_ha(cli: Cli, ha: dict[str, Any] | None) -> Any:
    """`up` with the topology's ha section replaced (None: removed), then put back."""
    before = cli.data.pop("ha")
    if ha is not None:
        cli.data["ha"] = ha
    cli.save()
    try:
        return cli.run("up")
    finally:
        cli.data["ha"] = before
        cli.save()


def test_a_changed_definition_updates_the_members_services_one_at_a_time(swarm: DindSwarm, ha_cli: Cli,
                                                                         manager: Any) -> None:
    """The analytics group's members' services updated by `up` after `ha.loop_wait` changed, one at a time
    while users are inserted: the standby first, the leader after a switchover (tests/support/ha.py)."""
    from docker.errors import NotFound

    def updated() -> dict[str, str]:  # each member's task: a new one replaces it when its service is updated
        c = _ctx(ha_cli)
        out = {}
        for m in hs.group_of(_Cluster(ha_cli), ANALYTICS).members:
            try:
                found = manager.services.get(f"{c.topology.cluster}-{m.name}")
            except NotFound:
                continue
            out[m.name] = ",".join(sorted(t["ID"] for t in found.tasks(filters={"desired-state": "running"})))
        return out

    def change(_: Any, loop_wait: int) -> dict[str, str]:
        ha_cli.data["ha"]["loop_wait"] = loop_wait
        ha_cli.save()
        return ha_cli.actions()

    try:
        hs.rolling_restart(_Cluster(ha_cli), updated, change)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{_member_logs(swarm, ha_cli, (ANALYTICS, f'{ANALYTICS}-2'))}") from None


def test_what_swarm_does_not_build_yet_is_refused_before_anything_changes(ha_cli: Cli) -> None:
    proc = _up_with_ha(ha_cli, None)
    assert proc.returncode == 10 and "turning ha off is not built yet" in " ".join(proc.output.split()), proc.output
    proc = _up_with_ha(ha_cli, {**ha_cli.data["ha"], "analytics": {"standbys": 0}})  # off for the analytics group
    said = " ".join(proc.output.split())
    assert proc.returncode == 10 and "analytics-primary is run by Patroni" in said, proc.output
    proc = ha_cli.run("rotate-secrets", "postgres_password")  # Patroni's configuration is a Swarm secret
    said = " ".join(proc.output.split())
    assert proc.returncode == 10 and "rotating postgres_password under ha is built on the local and Docker " \
        "backends only" in said and "analytics-primary" in said, proc.output
    before = ha_secrets(_ctx(ha_cli).store.root)
    proc = ha_cli.run("rotate-secrets", "ha_passwords")  # Patroni's own: in the same Swarm secret
    said = " ".join(proc.output.split())
    assert proc.returncode == 10 and "rotating ha_passwords (Patroni's own passwords) under ha is built on the " \
        "local and Docker backends only" in said, proc.output
    assert ha_secrets(_ctx(ha_cli).store.root) == before  # refused before any value is generated


def test_down_volumes_removes_every_member_and_volume(swarm: DindSwarm, ha_cli: Cli) -> None:
    ha_cli.ok("down", "--volumes", "--yes")
    for node in swarm.nodes:
        client = node.client()
        try:
            left = [v.name for v in client.volumes.list() if v.name.startswith(ha_cli.cluster)]
        finally:
            client.close()
        assert left == [], (node.hostname, left)
    assert services(swarm, ha_cli.cluster) == []
