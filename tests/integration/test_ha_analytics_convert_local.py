"""Turning ha on, then off, for the analytics primary of a cluster that holds data, on the local backend (#27
item 6): a cluster made without ha (Citus off, so it stays small; the coordinator reads the analytics primary
through its FDW) with one logical replica and rows on the primary gains `ha.analytics.standbys: 1`; `up` makes
the primary's own data directory its group's leader (same system identifier, same rows and checksums), clones a
standby from it, keeps the replica's slot, and re-points the replica's subscription and the FDW server at the
group's members, so a row written after the conversion reaches the replica. Turning ha off keeps the leader's
data as the plain primary, removes the standby, and replication still flows to the single host again.

One cluster for the module (local processes: it runs in the normal phase)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from streamctl.names import subscription_name
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import (
    USER_INSERT,
    analytics_ha,
    check_analytics_group,
    physical_slots,
    user_ids,
    wait_until,
)

pytestmark = [pytest.mark.etcd]

PRIMARY, STANDBY, REPLICA = "analytics-primary", "analytics-primary-2", "analytics-replica-1"
SLOT = subscription_name(REPLICA)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("etcd")
    with running(cluster="hacv", citus=False, replicas=1, redis=False) as c:
        c.timeout = 180.0  # the conversion clones a standby on a shared machine
        yield c


def _topology(c: LocalCluster, ha: dict[str, Any] | None) -> None:
    data = yaml.safe_load(c.path.read_text())
    data.pop("ha", None)
    if ha is not None:
        data["ha"] = ha
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))
    c.reload()


def _insert(c: LocalCluster, tag: str, n: int) -> None:
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        for _ in range(n):
            conn.execute(USER_INSERT, {"id": str(uuid.uuid4()), "title": tag})


def _sums(c: LocalCluster, node: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of the content, in key order, of each analytics table on `node`."""
    out = {}
    with c.ctx.pg_connect(node, "analytics_db") as conn:
        for table in c.topology.analytics.tables:
            row = conn.execute(f"SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                               f"FROM {table} t").fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def _sysid(c: LocalCluster) -> int:
    with c.ctx.pg_connect(PRIMARY, "postgres") as conn:
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


def _where(c: LocalCluster) -> tuple[str, str]:
    """The replica subscription's connection string and the coordinator's FDW server options."""
    with c.ctx.pg_connect(REPLICA, "analytics_db") as conn:
        sub = conn.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", (SLOT,)).fetchone()
    with c.ctx.pg_connect("coordinator") as conn:
        srv = conn.execute("SELECT srvoptions::text FROM pg_foreign_server").fetchone()
    assert sub is not None and srv is not None
    return str(sub[0]), str(srv[0])


def _flows(c: LocalCluster, tag: str) -> None:
    """A row written on the primary (its leader under ha) after the change reaches the replica."""
    _insert(c, tag, 1)
    wait_until(f"the replica receiving the '{tag}' row", lambda: user_ids(c, REPLICA) == user_ids(c, PRIMARY), 90)


def _verify_passes(c: LocalCluster, only: str) -> None:
    checks = c.cli.json("verify", "--only", only)["checks"]
    assert checks and {r["status"] for r in checks} <= {"passed", "skipped"}, checks


def test_turning_ha_on_and_off_for_the_analytics_primary_keeps_its_data_and_replication(
        cluster: LocalCluster) -> None:
    c = cluster
    _insert(c, "seed", 200)
    wait_until("the replica caught up", lambda: _sums(c, REPLICA) == _sums(c, PRIMARY), 90)
    sums, sysid = _sums(c, PRIMARY), _sysid(c)
    assert sums["users"][0] >= 200, sums

    ha = analytics_ha()
    ha["loop_wait"] = 2
    _topology(c, ha)
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}[PRIMARY] == "recreate"
    assert _sysid(c) == sysid  # the same data directory leads, not a fresh initdb beside it
    assert _sums(c, PRIMARY) == sums
    group = check_analytics_group(c, SLOT)  # led, a sync standby cloned from it, the slot permanent on both
    assert (c.backend.home.nodes / STANDBY / "data" / "PG_VERSION").exists()
    ports = ",".join(str(m.port) for m in group.members)
    sub, srv = _where(c)
    assert f"port={ports}" in sub and "target_session_attrs=primary" in sub, sub
    assert f"port={ports}" in srv and "target_session_attrs=primary" in srv, srv
    _flows(c, "after-ha-on")
    _verify_passes(c, "ha,replication")
    assert _sums(c, REPLICA) == _sums(c, PRIMARY)

    sums = _sums(c, PRIMARY)
    _topology(c, None)
    result = c.up()
    assert {s.node.name: s.action.value for s in result.node_steps}[PRIMARY] == "recreate"
    assert _sysid(c) == sysid and _sums(c, PRIMARY) == sums
    home = c.backend.home
    assert not (home.nodes / STANDBY).exists() and not (home.path / "etcd").exists()
    assert not (home.nodes / PRIMARY / "patroni.yml").exists()
    with c.ctx.pg_connect(PRIMARY, "analytics_db") as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (SLOT,)).fetchone() == (1,)  # the replica's slot kept
    assert physical_slots(c, PRIMARY) == []  # Patroni's for the standby, which would keep WAL for ever
    sub, srv = _where(c)
    assert "target_session_attrs" not in sub and "target_session_attrs" not in srv, (sub, srv)
    _flows(c, "after-ha-off")
    _verify_passes(c, "replication")
    assert c.up().changed is False
