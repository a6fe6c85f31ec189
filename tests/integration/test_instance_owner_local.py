"""The local backend's instance id: a marker in each node's directory. Another state directory pointed at the
same node data (a symlinked data home, or this one after its state was lost) is refused (exit 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from streamctl.backends.base import NodeState
from streamctl.errors import ExitCode
from streamctl.ownership import MARKER
from tests.support.cli import streamctl
from tests.support.cluster import traversable_tmpdir

ROWS = 120


def rows(cluster) -> int:
    with cluster.ctx.pg_connect("coordinator", "metadata_db") as conn:
        found = conn.execute("SELECT count(*) FROM owned").fetchone()
    return int(found[0]) if found else -1


def refused(proc, *needles: str) -> None:
    assert proc.returncode == ExitCode.FOREIGN, proc.stdout + proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    for needle in needles:
        assert needle in text, (needle, text)


def test_another_state_on_the_same_node_data_is_refused(make_cluster, tmp_path: Path) -> None:
    c = make_cluster(analytics=False, fdw=False, replicas=0, redis=True)
    c.up()
    with c.ctx.pg_connect("coordinator", "metadata_db") as conn:
        conn.execute("CREATE TABLE owned (id int PRIMARY KEY)")
        conn.execute(f"INSERT INTO owned SELECT generate_series(1, {ROWS})")
    state = json.loads(c.ctx.store.state_file.read_text())
    owner_id, owner_dir = state["instance_id"], str(c.ctx.store.root)
    nodes = c.backend.home.nodes
    for node in c.topology.nodes():
        marker = json.loads((nodes / node.name / MARKER).read_text())
        assert marker == {"instance": owner_id, "state_dir": owner_dir}

    # A second state directory whose data home is the first one's node data.
    other = traversable_tmpdir()  # the PostgreSQL user must reach it (we may run as root)
    (other / c.topology.cluster).mkdir(parents=True)
    (other / c.topology.cluster / "nodes").symlink_to(nodes)
    topo = str(c.path)
    refused(streamctl("up", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir)
    refused(streamctl("down", "--volumes", "--yes", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir)
    assert all(c.backend.observe(n).state is NodeState.RUNNING for n in c.topology.nodes())
    assert rows(c) == ROWS
    shutil.rmtree(other)

    # The same directory after its state was lost (a fresh clone, relocated data kept): refused too, and
    # `up --adopt` with the saved secrets takes the data back.
    saved = tmp_path / "secrets.json"
    shutil.copy(c.ctx.store.secrets_file, saved)
    c.ctx.store.state_file.unlink()
    c.ctx.store.secrets_file.unlink()
    refused(streamctl("up", "-f", topo), owner_id)
    refused(streamctl("up", "--adopt", "-f", topo), "needs the owner's secrets")
    shutil.copy(saved, c.ctx.store.secrets_file)
    proc = streamctl("up", "--adopt", "-f", topo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new_id = json.loads(c.ctx.store.state_file.read_text())["instance_id"]
    assert new_id != owner_id
    assert json.loads((nodes / "coordinator" / MARKER).read_text())["instance"] == new_id
    c.reload()
    assert rows(c) == ROWS
