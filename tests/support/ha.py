"""What the HA test and bench/failover.py do to a running HA cluster: a writer inserting through the
coordinator and counting what is acknowledged, and a member killed as a lost host would be."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from streamctl.config.members import Group, etcd_members, ha_groups
from streamctl.engines import postgres as pg_engine
from streamctl.ha import analytics, dcs, rest

if TYPE_CHECKING:
    from tests.support.cluster import LocalCluster

USER_INSERT = ("INSERT INTO users (user_id, username, email) "  # an analytics row, for the analytics primary's tests
               "VALUES (%(id)s::uuid, %(id)s::text || %(title)s::text, %(id)s::text || '@example.org')")
TITLE_INSERT = "INSERT INTO content_metadata (content_id, title, content_type) VALUES (%(id)s, %(title)s, 'movie')"


class Writer(threading.Thread):
    """Inserts a row through the coordinator every 50 ms, a new connection each time, counting what is acked
    (with when: `acked_at`, monotonic seconds) and what failed. `statement` names the row's new uuid `%(id)s`
    (and `%(title)s`): another table, or another node's, is written the same way."""

    def __init__(self, dsn: str, title: str = "ha", statement: str = TITLE_INSERT) -> None:
        super().__init__(daemon=True)
        self.dsn, self.title, self.statement, self.stop = dsn, title, statement, threading.Event()
        self.acked: list[str] = []
        self.acked_at: list[float] = []
        self.failed = 0
        self.streak = 0  # inserts acknowledged in a row (spread over the workers' shards)

    def run(self) -> None:
        while not self.stop.is_set():
            cid = str(uuid.uuid4())
            try:
                with psycopg.connect(self.dsn, connect_timeout=3, autocommit=True) as conn:
                    conn.execute(self.statement, {"id": cid, "title": self.title})  # type: ignore[arg-type]
                self.acked.append(cid)
                self.acked_at.append(time.monotonic())
                self.streak += 1
            except psycopg.Error:
                self.failed += 1
                self.streak = 0
            time.sleep(0.05)

    def first_ack_after(self, moment: float) -> float | None:
        return next((t for t in self.acked_at if t > moment), None)

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time between two acknowledged inserts from `start` to `end`."""
        times = [start, *(t for t in self.acked_at if start < t < end), end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


def wait_until(what: str, done: Callable[[], object], timeout: float = 90.0) -> None:
    """Poll `done` every half second until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.5)


def pids(member_dir: Path) -> tuple[int, int]:
    """A member's Patroni and PostgreSQL (postmaster) process ids, from its pid files."""
    patroni = int((member_dir / "run" / "patroni.pid").read_text().split()[0])
    postmaster = int((member_dir / "data" / "postmaster.pid").read_text().split()[0])
    return patroni, postmaster


def kill_member(member_dir: Path, postgres_only: bool = False) -> None:
    """A host loss, as far as one machine can play it: the member's Patroni and PostgreSQL SIGKILLed (or its
    PostgreSQL alone, Patroni left to notice)."""
    patroni, postmaster = pids(member_dir)
    for pid in (postmaster,) if postgres_only else (patroni, postmaster):
        os.kill(pid, signal.SIGKILL)


# -- a group under HA, as the analytics tests (local and Docker) read it ------------------------------------
def group_of(c: LocalCluster, name: str) -> Group:
    """The group under HA node `name` leads, its members where streamctl reaches them (on Swarm: at their hosts)."""
    return next(g for g in ha_groups(c.topology, c.ctx.store.pinned()) if g.node.name == name)


def ha_roles(c: LocalCluster, name: str) -> dict[str, str]:
    """member -> its role as Patroni's REST API says (`leader`, `sync_standby`, ...), of the group `name` leads."""
    return {s.name: s.ha_role for s in rest.group_members(group_of(c, name).members, _ca(c))}


def roles_and_timelines(c: LocalCluster, name: str) -> dict[str, tuple[str, int | None]]:
    """member -> (its role, its timeline), of the group `name` leads (the backup tests' failovers)."""
    return {s.name: (s.ha_role, s.timeline) for s in rest.group_members(group_of(c, name).members, _ca(c))}


def add_titles(c: LocalCluster, title: str, n: int = 20) -> None:
    """`n` catalog rows titled `title`, inserted through the coordinator."""
    with c.ctx.pg_connect("coordinator") as conn:
        for _ in range(n):
            conn.execute(TITLE_INSERT, {"id": str(uuid.uuid4()), "title": title})


def analytics_ha() -> dict[str, Any]:
    """An `ha:` section for the analytics primary alone: 1 synchronous standby, every port free."""
    from tests.support.ports import free_port_run

    etcd = free_port_run(2)
    return {"analytics": {"standbys": 1}, "synchronous": "on", "port": free_port_run(1),
            "rest_port": free_port_run(2), "etcd": {"port": etcd, "peer_port": etcd + 1}}


def check_analytics_group(c: LocalCluster, slot: str) -> Group:
    """The analytics primary's group as `analytics_ha` makes it: two members, a leader and a sync standby, and
    the replica's slot `slot` declared permanent and held by both (Patroni's copy on the standby)."""
    group = group_of(c, "analytics-primary")
    assert not group.citus and [m.name for m in group.members] == ["analytics-primary", "analytics-primary-2"]
    assert sorted(ha_roles(c, group.node.name).values()) == ["leader", "sync_standby"]
    assert analytics.declared_slots(group, _ca(c)) == {slot: analytics.slot_spec(c.topology)}
    assert all(slot in member_slots(c, group.node.name, m.name) for m in group.members)
    return group


def _ca(c: LocalCluster) -> str | None:
    return c.ctx.ca_path() if c.ctx.tls_on else None


def user_ids(c: LocalCluster, node: str) -> set[str]:
    """The analytics `users` rows' ids on node `node` (through its leader under HA)."""
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        return {str(r[0]) for r in conn.execute("SELECT user_id FROM users")}


def member_slots(c: LocalCluster, name: str, member_name: str) -> set[str]:
    """The logical slots of one member of the group `name` leads, asked of it alone (a standby too), where
    streamctl reaches it."""
    member = next(m for m in group_of(c, name).members if m.name == member_name)
    dsn = pg_engine.uri(member.node.host, member.port, "analytics_db", c.topology.pg_user,
                        c.ctx.secrets["postgres_password"], c.ctx.pg_ssl(target=name))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'")}


def status_members(nodes: list[dict[str, Any]], groups: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """`status --json`'s nodes checked for HA: each group's node lists its members in the topology's order, one
    leader and one sync standby, each with its group (a Citus group's number, the analytics primary's name) and a
    timeline; returns group node -> members."""
    found = {n["name"]: n.get("members") for n in nodes}
    out = {}
    for g in groups:
        members = found[g.node.name]
        assert members is not None and [m["name"] for m in members] == [m.name for m in g.members], members
        assert sorted(m["ha_role"] for m in members) == ["leader", "sync_standby"], members
        group = g.number if g.citus else g.node.name
        assert all(m["group"] == group and m["timeline"] >= 1 for m in members), members
        out[g.node.name] = members
    return out


def member_login(c: Any, group: Any, member: Any, password: str,
                 user: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    """The superuser (or `user`) on one member of a cluster under HA (not the group's leader: that member itself),
    over the port it publishes (a LocalCluster or a DockerCluster)."""
    ssl = c.ctx.pg_ssl(target=group.node.name)
    return psycopg.connect(host=member.node.host, port=member.port, dbname="postgres", user=user or c.topology.pg_user,
                           password=password, connect_timeout=5, autocommit=True, **ssl)


def patroni_sessions(c: Any, group: Any, member: Any, password: str, cut: bool = False) -> int:
    """Patroni's own sessions on a member's PostgreSQL (with `cut`: how many were terminated)."""
    with member_login(c, group, member, password) as conn:
        what = "pg_terminate_backend(pid)" if cut else "1"
        row = conn.execute(f"SELECT count({what}) FROM pg_stat_activity WHERE application_name LIKE 'Patroni%%' "  # noqa: S608
                           "AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def rotate_superuser(c: Any, ca: str | None) -> str:
    """`rotate-secrets postgres_password` on a cluster under HA, checked: every member's Patroni reloaded, the old
    password refused on every member (the standbys replayed the change), each Patroni, its sessions cut, logged
    in again with the new one. Returns the new password (the cluster reloaded)."""
    groups = ha_groups(c.topology)
    old = c.ctx.secrets["postgres_password"]
    done = c.cli.json("rotate-secrets", "postgres_password")
    assert [(s["name"], s["status"]) for s in done["secrets"]] == [("postgres_password", "rotated")], done
    reloaded = [x for x in done["secrets"][0]["changed"] if x.endswith("Patroni configuration reloaded")]
    assert len(reloaded) == sum(len(g.members) for g in groups), done
    c.reload()
    new = str(c.ctx.secrets["postgres_password"])
    assert new != old
    for g in groups:
        for m in g.members:
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                member_login(c, g, m, old).close()  # the standby replayed the change too
            assert patroni_sessions(c, g, m, new, cut=True) > 0
    for g in groups:
        for m in g.members:
            def back(g: Any = g, m: Any = m) -> bool:
                rest.get(m, "/patroni", ca)  # its REST API queries PostgreSQL: Patroni logs in again
                return patroni_sessions(c, g, m, new) > 0
            wait_until(f"{m.name}'s Patroni logged in with the new password", back, 60)
        wait_until(f"{g.node.name} led, its standbys streaming", lambda g=g: rest.ready(g.members, ca, True), 60)
    return new


def rotate_ha_passwords(c: Any, ca: str | None) -> None:
    """`rotate-secrets ha_passwords` under HA, checked: new values for Patroni's three users, nothing left pending;
    on every member the old replication and rewind passwords are refused and the new ones taken (the standbys
    replayed the change), and its REST API refuses the old password; each group's standbys, their replication
    connections cut, stream again (so with the new password)."""
    from streamctl.ha.secrets import ha_secrets, rotation_pending
    from streamctl.names import HA_REPLICATION_USER, HA_REWIND_USER

    root = c.ctx.store.root
    old = ha_secrets(root)
    done = c.cli.json("rotate-secrets", "ha_passwords")
    assert [(s["name"], s["status"]) for s in done["secrets"]] == [("ha_passwords", "rotated")], done
    new = ha_secrets(root)
    assert all(new[k] and new[k] != old[k] for k in new) and not rotation_pending(root), done
    groups = ha_groups(c.topology)
    for g in groups:
        for m in g.members:
            for user, key in ((HA_REPLICATION_USER, "replication_password"), (HA_REWIND_USER, "rewind_password")):
                with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                    member_login(c, g, m, old[key], user).close()
                member_login(c, g, m, new[key], user).close()
            assert rest.post(m, "/reload", {}, old["rest_password"], ca)[0] == 401
    query = ("SELECT count(*) FROM pg_stat_replication WHERE usename = %s AND state = 'streaming' "
             "AND backend_start > %s")
    for g in groups:
        with c.ctx.pg_connect(g.node.name) as conn:
            cut = conn.execute("SELECT now()").fetchone()[0]
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = %s",
                         (HA_REPLICATION_USER,))

        def again(g: Any = g, cut: Any = cut) -> bool:
            with c.ctx.pg_connect(g.node.name) as conn:
                return conn.execute(query, (HA_REPLICATION_USER, cut)).fetchone()[0] == len(g.members) - 1
        wait_until(f"{g.node.name}'s standbys streaming again with the new password", again, 60)


def dcs_keys(c: Any, group: int) -> int:
    """How many keys Patroni holds in etcd for a Citus group (through the first etcd member's published port)."""
    prefix = dcs.group_prefix(c.topology.cluster, group)
    e = etcd_members(c.topology)[0]
    body = {"key": base64.b64encode(prefix.encode()).decode(),
            "range_end": base64.b64encode((prefix[:-1] + "0").encode()).decode(), "count_only": True}
    request = urllib.request.Request(f"http://{e.host}:{e.port}/v3/kv/range", data=json.dumps(body).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response).get("count", 0))
def citus_sums(c: Any) -> dict[str, Any]:
    """Rows and checksum of every Citus table, through the coordinator: equal before and after a conversion."""
    from streamctl.citus import placement

    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        return {t: (s.rows, s.checksum) for t, s in placement.table_sums(conn).items()}


def system_ids(c: Any, names: tuple[str, ...] = ("coordinator", "worker-1")) -> dict[str, int]:
    """Each node's system identifier: the same as long as its data is the same (not a fresh initdb)."""
    out = {}
    for name in names:
        with c.ctx.pg_connect(name, "postgres") as conn:
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
        assert row is not None
        out[name] = int(row[0])
    return out


def before_conversion(c: Any) -> dict[str, Any]:
    """A seeded cluster's rows and checksums and its nodes' system identifiers, before ha is turned on."""
    sums = citus_sums(c)
    assert sums["content_metadata"][0] > 0 and sums["content_cast_crew"][0] > 0, sums
    return {"sums": sums, "sysids": system_ids(c)}


def conversion_plan(c: Any) -> dict[str, Any]:
    """What a dry run shows once an ha section is added to a cluster that holds data (nothing changed): each
    Citus node's step, its observation saying the conversion."""
    plan = {s.node.name: s for s in c.runner.preview().nodes}
    for name in ("coordinator", "worker-1"):
        assert "holds data made without ha" in plan[name].observation.detail, plan[name].observation
    return plan


def physical_slots(c: LocalCluster, node: str) -> list[str]:
    """The node's physical replication slots (once ha is off, Patroni's for the standbys must be gone: each would
    keep the node's WAL for ever)."""
    with c.ctx.pg_connect(node, "postgres") as conn:
        return [str(r[0]) for r in conn.execute("SELECT slot_name FROM pg_replication_slots "
                                                "WHERE slot_type = 'physical' ORDER BY 1")]


# -- the analytics primary turned under ha and back (test_ha_analytics_convert_*.py) ------------------------------
ANALYTICS_PRIMARY, ANALYTICS_REPLICA = "analytics-primary", "analytics-replica-1"


def insert_users(c: LocalCluster, tag: str, n: int) -> None:
    """`n` analytics `users` rows tagged `tag`, written on the analytics primary (its leader under ha)."""
    with c.ctx.pg_connect(ANALYTICS_PRIMARY, "analytics_db") as conn:
        for _ in range(n):
            conn.execute(USER_INSERT, {"id": str(uuid.uuid4()), "title": tag})


def analytics_sums(c: LocalCluster, node: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of the content, in key order, of each analytics table on `node`."""
    out = {}
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        for table in c.topology.analytics.tables:
            row = conn.execute(f"SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                               f"FROM {table} t").fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def replication_targets(c: LocalCluster, slot: str) -> tuple[str, str]:
    """The replica subscription's (`slot`) connection string and the coordinator's FDW server options."""
    with c.ctx.pg_connect(ANALYTICS_REPLICA, "analytics_db") as conn:
        sub = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", (slot,)).fetchone()
    with c.ctx.pg_connect("coordinator") as conn:
        srv = conn.execute("SELECT srvoptions::text FROM pg_foreign_server").fetchone()
    assert sub is not None and srv is not None
    return str(sub[0]), str(srv[0])


def replication_flows(c: LocalCluster, tag: str) -> None:
    """A row written on the analytics primary (its leader under ha) after a change reaches the replica."""
    insert_users(c, tag, 1)
    wait_until(f"the replica receiving the '{tag}' row",
               lambda: user_ids(c, ANALYTICS_REPLICA) == user_ids(c, ANALYTICS_PRIMARY), 90)


def verify_passes(c: LocalCluster, only: str) -> None:
    checks = c.cli.json("verify", "--only", only)["checks"]
    assert checks and {r["status"] for r in checks} <= {"passed", "skipped"}, checks


def set_ha(c: LocalCluster, ha: dict[str, Any] | None) -> None:
    """The topology's `ha:` section replaced by `ha` (None: removed), the cluster reloaded."""
    def change(data: dict[str, Any]) -> None:
        data.pop("ha", None)
        if ha is not None:
            data["ha"] = ha

    c.edit(change)


def _edit_and_up(c: Any, loop_wait: int) -> dict[str, str]:
    c.edit(lambda d: d["ha"].update(loop_wait=loop_wait))
    return {s.node.name: s.action.value for s in c.up().node_steps}


def rolling_restart(c: Any, made: Callable[[], dict[str, str]],
                    change: Callable[[Any, int], dict[str, str]] = _edit_and_up) -> None:
    """The analytics group's members made again by `up` after a change of their definition (`ha.loop_wait`,
    in every member's Patroni configuration), one at a time while users are inserted: the standby first, then a
    switchover to it, then the old leader, so inserts are acknowledged between the two restarts and the group
    ends one timeline further, led by the other member, with every acknowledged row, the replica receiving.
    `made`: member -> what identifies its process or container (each must change); `change`: `ha.loop_wait`
    set in the topology, then `up`: node -> its action."""
    from datetime import datetime

    group = group_of(c, ANALYTICS_PRIMARY)
    ca = _ca(c)
    states = {s.name: s for s in rest.group_members(group.members, ca)}
    leader = next(n for n, s in states.items() if s.ha_role == "leader")
    standby = next(n for n in states if n != leader)
    before = made()
    loop_wait = c.topology.ha.loop_wait
    wall = time.time() - time.monotonic()
    writer = Writer(c.ctx.pg_conninfo(ANALYTICS_PRIMARY, "analytics_db"), "-roll", USER_INSERT)
    writer.start()
    try:
        wait_until("the writer's first inserts", lambda: len(writer.acked) >= 10, 30)
        actions = change(c, loop_wait - 1)
        acked = len(writer.acked)
        wait_until("inserts after the restarts", lambda: len(writer.acked) >= acked + 10, 60)
    finally:
        writer.stop.set()
        writer.join(10)
    assert actions[ANALYTICS_PRIMARY] == "recreate", actions
    after = made()
    assert all(after[n] != before[n] for n in before), (before, after)  # every member made again
    now = {s.name: s for s in rest.group_members(group.members, ca)}
    assert (now[standby].ha_role, now[leader].ha_role) == ("leader", "sync_standby"), now
    assert now[standby].timeline == (states[leader].timeline or 0) + 1, (states, now)  # one switchover
    started = {m.name: datetime.fromisoformat(rest.get(m, "/patroni", ca)["postmaster_start_time"]).timestamp()
               for m in group.members}
    assert started[standby] < started[leader], started  # the standby first
    assert any(started[standby] < t + wall < started[leader] for t in writer.acked_at), (
        "no insert acknowledged between the two restarts", started)
    on_leader = user_ids(c, ANALYTICS_PRIMARY)
    assert set(writer.acked) <= on_leader, f"{len(set(writer.acked) - on_leader)} acknowledged inserts lost"
    wait_until("the replica receiving every row", lambda: user_ids(c, ANALYTICS_REPLICA) == on_leader, 90)
    assert {r["status"] for r in c.cli.json("verify", "--only", "ha,replication")["checks"]} == {"passed"}
