"""HA over a cluster's life on the local backend (#27 item 6 and "etcd loses quorum"): a seeded Citus cluster
made without ha gains an ha section and `up` makes each node's own data directory its group's leader under
Patroni (same system identifier, same rows and checksums), with a synchronous standby cloned from it; etcd is
stopped and the primaries keep taking writes past the ttl in Patroni's failsafe mode while `status` and
`verify` say so; `up` starts etcd again; turning ha off is refused while a standby leads, then keeps each
leader's data as the node and removes the standbys and etcd.

One cluster for the module, walked through in order (local processes: it runs in the normal phase)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamctl.citus import catalog
from streamctl.config.members import Group, ha_groups
from streamctl.ha import rest
from streamctl.ha.secrets import ha_secrets
from tests.support.cluster import LocalCluster, running
from tests.support.engines import require
from tests.support.ha import (
    before_conversion,
    citus_sums,
    conversion_plan,
    physical_slots,
    set_ha,
    system_ids,
    wait_until,
)
from tests.support.ports import free_port_run

pytestmark = [pytest.mark.citus, pytest.mark.etcd]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    require("citus", "etcd")
    with running(cluster="hal", citus=True, workers=1, analytics=False, redis=False) as c:
        c.timeout = 180.0  # the conversion clones a standby per group on a shared machine
        c.cli.ok("seed", "--scale", "0.01")
        yield c


@pytest.fixture(scope="module")
def ha_section() -> dict[str, Any]:
    etcd = free_port_run(2)
    return {"standbys": 1, "synchronous": "on", "ttl": 20, "loop_wait": 2, "port": free_port_run(2),
            "rest_port": free_port_run(4), "etcd": {"port": etcd, "peer_port": etcd + 1}}


def _ca(c: LocalCluster) -> str | None:
    return c.ctx.ca_path() if c.ctx.tls_on else None


def _roles(c: LocalCluster, g: Group) -> dict[str, str]:
    return {s.name: s.ha_role for s in rest.group_members(g.members, _ca(c))}


def _insert(c: LocalCluster, title: str) -> None:
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        conn.execute("INSERT INTO content_metadata (content_id, title, content_type) VALUES (%s, %s, 'movie')",
                     (str(uuid.uuid4()), title))


def _failsafe_topology(c: LocalCluster, g: Group) -> int:
    """How many members the leader's failsafe topology (Patroni's /failsafe) names; 0 before it has one."""
    try:
        found = rest.get(g.members[0], "/failsafe", _ca(c))
    except (OSError, ValueError):
        return 0
    return len(found) if isinstance(found, dict) else 0


@pytest.fixture(scope="module")
def before(cluster: LocalCluster) -> dict[str, Any]:
    return before_conversion(cluster)


def test_turning_ha_on_makes_each_nodes_data_its_groups_leader(cluster: LocalCluster, before: dict[str, Any],
                                                                 ha_section: dict[str, Any]) -> None:
    c = cluster
    set_ha(c, ha_section)
    plan = conversion_plan(c)
    assert [plan[n].action.value for n in ("coordinator", "worker-1")] == ["recreate", "recreate"], plan
    result = c.up()
    actions = {s.node.name: s.action.value for s in result.node_steps}
    assert (actions["coordinator"], actions["worker-1"]) == ("recreate", "recreate"), actions
    assert system_ids(c) == before["sysids"]  # the same data directories, not a fresh initdb beside them
    assert citus_sums(c) == before["sums"]
    for g in ha_groups(c.topology):
        assert _roles(c, g) == {g.members[0].name: "leader", g.members[1].name: "sync_standby"}, g.node.name
        assert (c.backend.home.nodes / g.members[1].name / "data" / "PG_VERSION").exists()  # cloned
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        leaders = catalog.group_leaders(conn)
    assert leaders == {g.number: (g.node.host, g.node.port) for g in ha_groups(c.topology)}
    checks = c.cli.json("verify", "--only", "ha,citus")["checks"]
    assert {r["status"] for r in checks} <= {"passed", "skipped"}, checks
    _insert(c, "after-ha")
    assert c.up().changed is False  # the dynamic configuration was set by the first up: nothing left to do
    ca = c.ctx.ca_path() if c.ctx.tls_on else None
    for g in ha_groups(c.topology):  # a member behind the group's last timeline never takes the leader key
        config = rest.dynamic_config(g.members, ca)
        assert (config.get("failsafe_mode"), config.get("check_timeline")) == (True, True), (g.node.name, config)
        assert {k: config["postgresql"].get(k) for k in ("use_pg_rewind", "remove_data_directory_on_rewind_failure",
                                                         "remove_data_directory_on_diverged_timelines")} == \
            dict.fromkeys(("use_pg_rewind", "remove_data_directory_on_rewind_failure",
                           "remove_data_directory_on_diverged_timelines"), True), config  # the bootstrap's kept
    # a cluster made before check_timeline was kept (the setting removed): the next up sets it again
    g = ha_groups(c.topology)[0]
    assert rest.patch_config(g.members, {"check_timeline": None}, ha_secrets(c.ctx.store.root)["rest_password"],
                             ca)[0] == 200
    assert "check_timeline" not in rest.dynamic_config(g.members, ca)
    assert c.up().changed is True
    assert rest.dynamic_config(g.members, ca).get("check_timeline") is True


def test_the_primaries_keep_serving_in_failsafe_mode_while_etcd_is_down(cluster: LocalCluster) -> None:
    c = cluster
    groups = ha_groups(c.topology)
    for g in groups:  # Patroni's leader publishes the failsafe topology (its members' REST APIs) in etcd
        wait_until(f"{g.node.name}'s failsafe topology", lambda g=g: _failsafe_topology(c, g) == len(g.members), 30)
    etcd_pid = int((c.backend.home.path / "etcd" / "etcd-1" / "etcd.pid").read_text().split()[0])
    stopped = time.monotonic()
    os.kill(etcd_pid, signal.SIGKILL)
    writes = 0
    while time.monotonic() - stopped < c.topology.ha.ttl + 10:  # type: ignore[union-attr]
        _insert(c, "failsafe")  # raises if the coordinator's leader was demoted, or a worker's
        writes += 1
        time.sleep(0.5)
    status = c.cli.run("status", "--json")
    assert status.returncode == 12, status.stdout
    nodes = {n["name"]: n for n in json.loads(status.stdout)["nodes"]}
    for g in groups:
        row = nodes[g.node.name]
        assert row["dcs"] == {"problem": "etcd unreachable", "failsafe": True, "primary": g.members[0].name}, row
        assert "failsafe mode" in row["detail"] and not row["healthy"], row
        assert [m["ha_role"] for m in row["members"]] == ["leader", "replica"], row["members"]
    verify = c.cli.run("verify", "--only", "ha", "--json")
    assert verify.returncode == 8, verify.stdout  # a check failed
    verdicts = {r["target"]: r for r in json.loads(verify.stdout)["checks"]}
    assert all(verdicts[g.node.name]["status"] == "failed" and "etcd unreachable" in verdicts[g.node.name]["detail"]
               for g in groups), verdicts

    c.up()  # etcd started again (its data kept), every group led as before
    for g in groups:
        wait_until(f"{g.node.name} led with its sync standby",
              lambda g=g: _roles(c, g) == {g.members[0].name: "leader", g.members[1].name: "sync_standby"})
    assert c.cli.run("status").returncode == 0
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        assert conn.execute("SELECT count(*) FROM content_metadata WHERE title = 'failsafe'").fetchone() == (writes,)


def test_turning_ha_off_keeps_each_leaders_data_and_removes_the_rest(cluster: LocalCluster, before: dict[str, Any],
                                                                   ha_section: dict[str, Any]) -> None:
    c = cluster
    worker = next(g for g in ha_groups(c.topology) if g.node.name == "worker-1")
    c.cli.ok("switchover", "worker-1", "--to", worker.members[1].name)
    set_ha(c, None)
    refused = c.cli.run("up")
    assert refused.returncode == 10 and "worker-1-2 leads it" in refused.stderr, refused.stderr
    set_ha(c, ha_section)
    c.cli.ok("switchover", "worker-1", "--to", "worker-1")
    sums = citus_sums(c)

    set_ha(c, None)
    result = c.up()
    actions = {s.node.name: s.action.value for s in result.node_steps}
    assert (actions["coordinator"], actions["worker-1"]) == ("recreate", "recreate"), actions
    assert system_ids(c) == before["sysids"] and citus_sums(c) == sums
    home = c.backend.home
    assert not list(home.nodes.glob("*-2")) and not (home.path / "etcd").exists()
    assert not list(home.nodes.glob("*/patroni.yml"))
    with c.ctx.pg_connect("coordinator", c.topology.metadata.database) as conn:
        assert catalog.secondaries(conn) == []
    assert {n: physical_slots(c, n) for n in ("coordinator", "worker-1")} == {"coordinator": [], "worker-1": []}
    checks = c.cli.json("verify", "--only", "citus")["checks"]
    assert {r["status"] for r in checks} <= {"passed", "skipped"}, checks
    _insert(c, "after-off")
    assert c.up().changed is False
