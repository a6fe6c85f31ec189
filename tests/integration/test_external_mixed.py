"""A mixed topology: PostgreSQL nodes made by hand (replication set up by hand too) are external; Redis
and the gateway are provisioned by streamctl. It comes up, is configured on request, seeds when confirmed,
verifies, serves the gateway, and `down` touches only what streamctl provisioned."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from streamctl.backends import select_backend
from streamctl.backends.mixed import MixedBackend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.drift import DriftError
from streamctl.errors import RefusedError
from streamctl.names import PUBLICATION, subscription_name
from streamctl.runner import Runner
from streamctl.seed.run import SeedOptions, seed
from streamctl.services.postgres import schema_files
from streamctl.verify.runner import run_checks
from tests.support.cluster import traversable_tmpdir
from tests.support.external import USER, HandCluster, HandServer
from tests.support.gateway import serve
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VAR = "STREAMCTL_TEST_MIXED_PASSWORD"


def _hand_replication(primary: HandServer, replica: HandServer) -> None:
    """What an operator would do: the analytics tables on both, a publication, a subscription."""
    ddl = schema_files("analytics")[0].text
    for s in (primary, replica):
        with s.connect() as conn:
            conn.execute("CREATE DATABASE analytics_db")
        with s.connect("analytics_db") as conn:
            conn.execute(ddl.encode())
    with primary.connect("analytics_db") as conn:
        conn.execute(f'CREATE PUBLICATION "{PUBLICATION}" FOR TABLE users, user_watch_history')
    with replica.connect("analytics_db") as conn:
        conn.execute(f'CREATE SUBSCRIPTION "{subscription_name("analytics-replica-1")}" CONNECTION '
                     f"'{primary.conninfo('analytics_db')}' PUBLICATION \"{PUBLICATION}\"")


@pytest.fixture(scope="module")
def mixed() -> Iterator[tuple[Path, HandCluster, list[HandServer]]]:
    hand = HandCluster(secrets.token_urlsafe(16))
    directory = traversable_tmpdir()
    try:
        coordinator, primary, replica = (hand.server() for _ in range(3))
        with coordinator.connect() as conn:
            conn.execute("CREATE DATABASE metadata_db")
        _hand_replication(primary, replica)
        ext = {"backend": "external"}
        data: dict[str, Any] = {
            "version": 1, "cluster": "mixed", "backend": "local", "state_dir": ".streamctl",
            "external": {"host": "127.0.0.1", "user": USER, "password": "${" + VAR + "}"},
            "metadata": {"citus": {"enabled": False}, "coordinator": {**ext, "port": coordinator.port},
                         "workers": {"count": 0}},
            "analytics": {"primary": {**ext, "port": primary.port},
                          "replicas": [{**ext, "name": "analytics-replica-1", "port": replica.port}]},
            "fdw": {"enabled": True, "source": "analytics-primary"},
            "mongo": {"enabled": False}, "redis": {"port": free_port()}, "gateway": {"port": free_port()},
        }
        path = directory / "topology.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        yield path, hand, [coordinator, primary, replica]
    finally:
        try:
            ctx = _ctx(path, hand.password)
            Runner(ctx, select_backend(ctx)).down(volumes=True, skip_external=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
        hand.stop()


def _ctx(path: Path, password: str) -> ClusterContext:
    return ClusterContext.build(load_topology(path, env={**os.environ, VAR: password}), path)


def test_mixed_topology_comes_up_and_verifies(mixed: Any) -> None:
    path, hand, (coordinator, primary, replica) = mixed
    ctx = _ctx(path, hand.password)
    be = select_backend(ctx)
    assert isinstance(be, MixedBackend) and be.name == "local"
    assert {n.name: be.for_node(n).name for n in ctx.topology.nodes()} == {
        "coordinator": "external", "analytics-primary": "external", "analytics-replica-1": "external",
        "redis": "local"}

    with pytest.raises(DriftError) as info:  # Redis is provisioned; the hand-made nodes only checked
        Runner(ctx, be).up()
    differences = "\n".join(info.value.details)
    assert "coordinator: schema metadata: apply 001_catalogue.sql" in differences
    assert "analytics-replica-1: subscription: update the subscription's connection" in differences
    ctx.redis().ping()
    with replica.connect("analytics_db") as conn:  # the hand-made subscription is untouched
        row = conn.execute("SELECT subconninfo FROM pg_subscription").fetchone()
    assert row is not None and f"user={USER}" in row[0]

    Runner(ctx, be, configure_external=True).up()
    try:  # converged: a plain `up` now finds nothing to report
        assert not Runner(ctx, be).up().differences
    except DriftError as exc:
        pytest.fail(f"a plain up after --configure still differs: {exc.details}")

    with pytest.raises(RefusedError):
        seed(ctx, SeedOptions(scale=0.002, seed=3, replica_timeout=120))
    seed(ctx, SeedOptions(scale=0.002, seed=3, replica_timeout=120,
                          allow_external=True))
    report = run_checks(ctx, None)
    statuses = {f"{r.check} {r.target}": (r.status.value, r.detail) for r in report.results}
    bad = {k: v for k, v in statuses.items() if v[0] not in ("passed", "skipped")}
    assert not bad, bad
    assert any(k.startswith("replication.data") and s == "passed" for k, (s, _) in statuses.items())
    assert any(k.startswith("fdw.") and s == "passed" for k, (s, _) in statuses.items())

    from streamctl.gateway.app import create_app

    with serve(create_app(ctx)) as url, httpx.Client(base_url=url) as api:
        health = api.get("/health")
        assert health.status_code == 200, health.text
        ids = api.get("/api/v1/content/ids", params={"limit": 2}).json()
        assert len(ids["items"]) == 2
        users = api.get("/api/v1/content/users/ids", params={"limit": 1}).json()  # FDW on the coordinator
        assert len(users["items"]) == 1

    with pytest.raises(RefusedError, match="external node"):
        Runner(ctx, be).down()
    Runner(ctx, be).down(skip_external=True)
    with pytest.raises(Exception):  # noqa: B017 - Redis (provisioned) is stopped
        ctx.redis().ping()
    for s in (coordinator, primary, replica):  # the external servers still run
        with psycopg.connect(s.conninfo(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
