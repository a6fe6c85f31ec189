"""Two state directories, one cluster name, one Docker engine: the second never adopts, recreates or deletes
the first one's nodes (exit 13, naming the owner), unless `up --adopt` with the owner's secrets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streamctl.backends.docker import owner as docker_owner
from streamctl.context import ClusterContext
from streamctl.errors import ExitCode
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR, Ownership
from tests.support.cli import streamctl
from tests.support.docker import cluster_resources, docker_client

pytestmark = [pytest.mark.docker]
ROWS = 250




def seed_rows(ctx: ClusterContext) -> None:
    with ctx.pg_connect("coordinator", "metadata_db") as conn:
        conn.execute("CREATE TABLE owned (id int PRIMARY KEY)")
        conn.execute(f"INSERT INTO owned SELECT generate_series(1, {ROWS})")
    redis = ctx.redis()
    redis.set("owned:key", "kept")


def counts(ctx: ClusterContext) -> tuple[int, str | None]:
    with ctx.pg_connect("coordinator", "metadata_db") as conn:
        rows = conn.execute("SELECT count(*) FROM owned").fetchone()
    value = ctx.redis().get("owned:key")
    return int(rows[0]) if rows else -1, value.decode() if isinstance(value, bytes) else value


def container_ids(cluster: str) -> dict[str, str]:
    client = docker_client()
    try:
        return {c.name: c.id for c in client.containers.list(all=True, filters={
            "label": f"io.streamctl.cluster={cluster}"})}
    finally:
        client.close()


def instance_labels(cluster: str) -> set[str | None]:
    client = docker_client()
    try:
        return {c.labels.get(LABEL_INSTANCE) for c in client.containers.list(all=True, filters={
            "label": f"io.streamctl.cluster={cluster}"})}
    finally:
        client.close()


def refused(proc: Any, *needles: str) -> None:
    assert proc.returncode == ExitCode.FOREIGN, proc.stdout + proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    for needle in needles:
        assert " ".join(needle.split()) in text, (needle, text)


def test_second_state_dir_is_refused_and_adopt_takes_over_with_the_secrets(make_docker_cluster,
                                                                         tmp_path: Path) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, analytics=False)
    c.up()
    seed_rows(c.ctx)
    owner_id = json.loads(c.ctx.store.state_file.read_text())["instance_id"]
    owner_dir = str(c.ctx.store.root)
    assert instance_labels(c.cluster) == {owner_id}
    before = container_ids(c.cluster)
    topo = str(c.path)
    other = tmp_path / "second-checkout"

    # A second state directory, same topology, same engine: up and down --volumes are refused.
    refused(streamctl("up", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir, "--adopt")
    refused(streamctl("down", "--volumes", "--yes", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir)
    assert container_ids(c.cluster) == before
    assert counts(c.ctx) == (ROWS, "kept")

    # After the owner's plain `down` only volumes remain: their markers still say whose they are.
    c.down()
    assert container_ids(c.cluster) == {}
    refused(streamctl("up", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir)
    refused(streamctl("down", "--volumes", "--yes", "-f", topo, "--state-dir", str(other)), owner_id, owner_dir)
    assert len(cluster_resources(c.cluster)["volumes"]) >= 2
    c.up()
    assert counts(c.ctx) == (ROWS, "kept")

    # --adopt needs the owner's secrets: none here, or wrong ones, is refused before anything changes.
    before = container_ids(c.cluster)
    refused(streamctl("up", "--adopt", "-f", topo, "--state-dir", str(other)), "needs the owner's secrets")
    mine = other / c.cluster
    mine.mkdir(parents=True, exist_ok=True)
    secrets = json.loads((c.ctx.store.secrets_file).read_text())
    (mine / "secrets.json").write_text(json.dumps({**secrets, "postgres_password": "not-the-owners"}))
    refused(streamctl("up", "--adopt", "-f", topo, "--state-dir", str(other)), "password authentication failed")
    assert container_ids(c.cluster) == before
    assert counts(c.ctx) == (ROWS, "kept")

    shutil.copy(c.ctx.store.secrets_file, mine / "secrets.json")
    proc = streamctl("up", "--adopt", "-f", topo, "--state-dir", str(other))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = json.loads((mine / "state.json").read_text())
    new_id = state["instance_id"]
    assert new_id != owner_id and state["adopted"] == [owner_id] and "adopting" not in state
    assert instance_labels(c.cluster) == {new_id}
    adopter = ClusterContext.build(c.topology, c.path, str(other))
    assert counts(adopter) == (ROWS, "kept")  # the data was kept, not re-initialised

    # Now the first state directory is the stranger: refused, naming the adopter.
    refused(streamctl("up", "-f", topo), new_id, str(mine))
    refused(streamctl("down", "--volumes", "--yes", "-f", topo), new_id, str(mine))
    assert counts(adopter) == (ROWS, "kept")

    proc = streamctl("down", "--volumes", "--yes", "-f", topo, "--state-dir", str(other))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster_resources(c.cluster) == {"containers": [], "volumes": [], "networks": []}


def test_nodes_from_before_instance_ids_are_taken_over_once_by_their_own_state(make_docker_cluster,
                                                                              monkeypatch, tmp_path) -> None:
    c = make_docker_cluster(replicas=0, fdw=False, analytics=False, redis=False)
    with monkeypatch.context() as m:  # as an older streamctl made them: no instance label, no marker
        m.setattr(Ownership, "labels", lambda self: {})
        m.setattr(Ownership, "check", lambda self, *a: True)
        m.setattr(docker_owner, "write_marker", lambda *a, **k: None)
        c.up()
    state = json.loads(c.ctx.store.state_file.read_text())
    del state["instance_id"]
    c.ctx.store.write(state)
    assert instance_labels(c.cluster) == {None}
    with c.ctx.pg_connect("coordinator", "metadata_db") as conn:
        conn.execute("CREATE TABLE owned (id int PRIMARY KEY)")
        conn.execute(f"INSERT INTO owned SELECT generate_series(1, {ROWS})")

    # A fresh state directory has no secrets for them: it did not make them.
    other = tmp_path / "fresh"
    refused(streamctl("up", "-f", str(c.path), "--state-dir", str(other)), "no instance id")

    # Their own state (secrets, no id yet) takes them over once: relabelled, data kept.
    proc = streamctl("up", "--dry-run", "--json", "-f", str(c.path))
    assert proc.returncode == 0, proc.stderr
    first = next(row for row in json.loads(proc.stdout) if row["node"] == "coordinator")  # its node step
    assert first["action"] == "recreate" and "without an instance id" in first["detail"]
    proc = streamctl("up", "-f", str(c.path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = json.loads(c.ctx.store.state_file.read_text())
    assert instance_labels(c.cluster) == {state["instance_id"]} and "adopting" not in state
    client = docker_client()
    try:
        assert client.containers.get(f"{c.cluster}-coordinator").labels[LABEL_STATE_DIR] == str(c.ctx.store.root)
    finally:
        client.close()
    c.reload()
    with c.ctx.pg_connect("coordinator", "metadata_db") as conn:
        assert conn.execute("SELECT count(*) FROM owned").fetchone() == (ROWS,)
    # From now on the fresh state directory is refused by the id, and a second `up` changes nothing.
    refused(streamctl("up", "-f", str(c.path), "--state-dir", str(other)), state["instance_id"])
    proc = streamctl("up", "--json", "-f", str(c.path))
    assert proc.returncode == 0 and json.loads(proc.stdout)["changed"] is False, proc.stdout + proc.stderr
