"""backend: external against PostgreSQL/Citus servers the test makes by hand with initdb/pg_ctl: `up`
checks and changes nothing, `--configure` configures, verify/shards match a provisioned cluster of the
same shape, `down` refuses, and refusals (password, not Citus, privilege) name the node."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backends import select_backend
from streamctl.citus.shards import inspect_shards
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext
from streamctl.drift import DriftError, NotCitusError
from streamctl.errors import ExitCode, RefusedError
from streamctl.pgconn import PrivilegeError
from streamctl.runner import Runner
from streamctl.seed.run import SeedOptions, seed
from streamctl.verify.runner import run_checks
from tests.support.cli import streamctl
from tests.support.cluster import traversable_tmpdir
from tests.support.engines import citus_bindir
from tests.support.external import USER, HandCluster, HandServer

pytestmark = [pytest.mark.postgres, pytest.mark.citus]

PASSWORD_VAR = "STREAMCTL_TEST_EXTERNAL_PASSWORD"
AS_OF = date(2024, 3, 31)


def _bare_citus(cluster: HandCluster, workers: int) -> list[HandServer]:
    """A Citus cluster as an operator builds it: extension, credentials, workers registered; no schema."""
    servers = [cluster.server(citus=True) for _ in range(workers + 1)]
    for s in servers:
        with s.connect() as conn:
            conn.execute("CREATE DATABASE metadata_db")
        with s.connect("metadata_db") as conn:
            conn.execute("CREATE EXTENSION citus")
            conn.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)",
                         (USER, f"password={cluster.password}"))
    with servers[0].connect("metadata_db") as conn:
        conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (servers[0].port,))
        for w in servers[1:]:
            conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (w.port,))
    return servers


def external_topology(directory: Path, servers: list[HandServer], user: str = USER,
                      **extra: Any) -> Path:
    coordinator, *workers = servers
    data: dict[str, Any] = {
        "version": 1, "cluster": "ext", "backend": "external", "state_dir": ".streamctl",
        "external": {"host": "127.0.0.1", "user": user, "password": "${" + PASSWORD_VAR + "}"},
        "metadata": {"citus": {"enabled": True, "shard_count": 8}, "coordinator": {"port": coordinator.port},
                     "workers": {"count": len(workers), "port": workers[0].port if workers else 15433,
                                 "nodes": [{"port": w.port} for w in workers]}},
        "analytics": {"enabled": False}, "fdw": {"enabled": False}, "mongo": {"enabled": False},
        "redis": {"enabled": False}, "gateway": {"enabled": False},
    }
    data.update(extra)
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    """The real command line, with its real exit codes; the password only in the environment."""
    return streamctl(*args, env={PASSWORD_VAR: password}, timeout=300)


def context(path: Path, password: str) -> ClusterContext:
    return ClusterContext.build(load_topology(path, env={**os.environ, PASSWORD_VAR: password}), path)


def catalog_counts(servers: list[HandServer]) -> list[tuple[Any, ...]]:
    """What `up` could have changed, per server: relations, roles, schemas, extensions, Citus nodes."""
    out = []
    for s in servers:
        with s.connect("metadata_db") as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_roles), "
                "(SELECT count(*) FROM pg_namespace), (SELECT count(*) FROM pg_extension), "
                "(SELECT count(*) FROM pg_dist_node), (SELECT count(*) FROM pg_dist_authinfo), "
                "(SELECT count(*) FROM pg_dist_partition)").fetchone()
        assert row is not None
        out.append(tuple(row))
    return out


@pytest.fixture(scope="module")
def hand() -> Iterator[tuple[HandCluster, list[HandServer], Path]]:
    cluster = HandCluster(secrets.token_urlsafe(16), citus_bindir())
    try:
        servers = _bare_citus(cluster, workers=2)
        directory = traversable_tmpdir()
        yield cluster, servers, external_topology(directory, servers)
    finally:
        cluster.stop()


def test_up_checks_and_changes_nothing_then_configure_applies(hand: Any) -> None:
    cluster, servers, path = hand
    ctx = context(path, cluster.password)
    be = select_backend(ctx)
    assert be.name == "external"
    before = catalog_counts(servers)
    with pytest.raises(DriftError) as info:
        Runner(ctx, be).up()
    assert info.value.exit_code == ExitCode.CHECK_FAILED
    assert any("coordinator: schema metadata: apply 001_catalogue.sql" in d for d in info.value.details)
    assert any("citus distribution" in d for d in info.value.details)
    assert catalog_counts(servers) == before, "up without --configure changed an external node"
    state = (ctx.store.root / "state.json").read_text()
    assert cluster.password not in state
    checked = cli("up", "-f", str(path), password=cluster.password)  # the command, as an operator runs it
    assert checked.returncode == ExitCode.CHECK_FAILED, checked.stderr
    assert "coordinator: schema metadata: apply 001_catalogue.sql" in checked.stderr and "--configure" in checked.stderr
    assert catalog_counts(servers) == before

    configured = cli("up", "--configure", "-f", str(path), password=cluster.password)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert cluster.password not in configured.stdout + configured.stderr
    with servers[0].connect("metadata_db") as conn:
        kinds = dict(conn.execute("SELECT table_name::text, citus_table_type FROM citus_tables").fetchall())
    assert kinds["content_metadata"] == "distributed" and kinds["genres"] == "reference"

    settled = catalog_counts(servers)
    result = Runner(ctx, be).up()  # now they match: a check that passes and changes nothing
    assert not result.differences and not result.changed
    assert catalog_counts(servers) == settled


def test_down_refuses_on_external_nodes(hand: Any) -> None:
    cluster, servers, path = hand
    ctx = context(path, cluster.password)
    with pytest.raises(RefusedError, match="coordinator, worker-1, worker-2"):
        Runner(ctx, select_backend(ctx)).down()
    res = cli("down", "-f", str(path), password=cluster.password)
    assert res.returncode == ExitCode.REFUSED, res.stderr
    assert "external node(s) coordinator" in res.stderr
    with servers[1].connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    logs = cli("logs", "coordinator", "--follow", "-f", str(path), password=cluster.password)
    assert logs.returncode == ExitCode.NOT_FOUND and "its log is where it runs" in logs.stderr, logs.stderr


def test_wrong_password_names_the_node(hand: Any) -> None:
    _cluster, _servers, path = hand
    ctx = context(path, "not-the-password")
    with pytest.raises(Exception) as info:
        Runner(ctx, select_backend(ctx), timeout=30).up()
    assert "external node coordinator" in str(info.value) or "external node worker" in str(info.value)
    assert "password authentication failed" in str(info.value)
    assert "not-the-password" not in str(info.value)


def test_a_node_without_citus_is_refused_by_name() -> None:
    plain = HandCluster(secrets.token_urlsafe(16))
    try:
        server = plain.server(citus=False)
        with server.connect() as conn:
            conn.execute("CREATE DATABASE metadata_db")
        path = external_topology(traversable_tmpdir(), [server])
        ctx = context(path, plain.password)
        with pytest.raises(NotCitusError, match=r"coordinator \(127.0.0.1:\d+\) is not a Citus node"):
            Runner(ctx, select_backend(ctx)).up()
    finally:
        plain.stop()


def _seed_opts() -> SeedOptions:
    return SeedOptions(scale=0.005, seed=7, as_of=AS_OF, reset=False, replica_timeout=60)


def _verify_summary(ctx: ClusterContext) -> dict[str, str]:
    return {f"{r.check} {r.target}": r.status.value for r in run_checks(ctx, None).results}


def _shards_summary(ctx: ClusterContext) -> list[tuple[Any, ...]]:
    """Per table: kind, shards, rows, which topology nodes hold it, and the spread over them (which worker
    gets which shard follows Citus's node order, i.e. the random test ports, so the spread is a multiset)."""
    return sorted((t.table, t.kind, t.shard_count, t.rows, tuple(sorted(n.node for n in t.nodes)),
                   tuple(sorted((n.shards, n.rows) for n in t.nodes))) for t in inspect_shards(ctx))


def test_seed_needs_confirmation_then_verify_and_shards_match_a_provisioned_cluster(
        hand: Any, make_cluster: Any) -> None:
    cluster, _servers, path = hand
    ctx = context(path, cluster.password)
    Runner(ctx, select_backend(ctx), configure_external=True).up()
    with pytest.raises(RefusedError, match="external"):
        seed(ctx, _seed_opts())
    opts = _seed_opts()
    argv = ("seed", "-f", str(path), "--scale", str(opts.scale), "--seed", str(opts.seed), "--as-of", str(AS_OF))
    refused = cli(*argv, password=cluster.password)
    assert refused.returncode == ExitCode.REFUSED and "--yes-write-external" in refused.stderr, refused.stderr
    seeded = cli(*argv, "--yes-write-external", password=cluster.password)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    provisioned = make_cluster(citus=True, workers=2, analytics=False, redis=False, fdw=False,
                               gateway={"enabled": False})
    provisioned.up()
    seed(provisioned.ctx, _seed_opts())

    ext_verify, prov_verify = _verify_summary(ctx), _verify_summary(provisioned.ctx)
    # The tls.* checks are about the cluster CA, which covers provisioned nodes only (external: skipped).
    assert {k: v for k, v in ext_verify.items() if not k.startswith("tls.")} == \
        {k: v for k, v in prov_verify.items() if not k.startswith("tls.")}
    assert all(status in ("passed", "skipped") for status in ext_verify.values()), ext_verify
    assert _shards_summary(ctx) == _shards_summary(provisioned.ctx)

    res = cli("verify", "-f", str(path), "--json", password=cluster.password)
    assert res.returncode == 0, res.stdout + res.stderr
    assert cluster.password not in res.stdout + res.stderr
    res = cli("shards", "-f", str(path), password=cluster.password)
    assert res.returncode == 0 and "content_metadata" in res.stdout, res.stdout + res.stderr


def test_read_only_role_reads_and_a_missing_privilege_is_named(hand: Any) -> None:
    cluster, servers, path = hand
    ctx = context(path, cluster.password)
    Runner(ctx, select_backend(ctx), configure_external=True).up()
    reader_pw = secrets.token_urlsafe(12)
    with servers[0].connect("metadata_db") as conn:  # the operator's read-only role (propagates to workers)
        conn.execute("DROP ROLE IF EXISTS ops_reader")
        conn.execute(f"CREATE ROLE ops_reader LOGIN PASSWORD '{reader_pw}' IN ROLE pg_monitor")
        conn.execute("ALTER ROLE ops_reader SET default_transaction_read_only = on")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO ops_reader")
        conn.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, 'ops_reader', %s)",
                     (f"password={reader_pw}",))
    ro_path = external_topology(traversable_tmpdir(), servers, user="ops_reader")
    ro = context(ro_path, reader_pw)
    results = {f"{r.check} {r.target}": r for r in run_checks(ro, None).results}
    assert all(r.status.value in ("passed", "skipped") for r in results.values()), {n: (r.status, r.detail)
                                                                           for n, r in results.items()}
    assert _shards_summary(ro) == _shards_summary(ctx)

    with servers[0].connect("metadata_db") as conn:
        conn.execute("REVOKE SELECT ON content_metadata FROM ops_reader")
    try:
        with pytest.raises(PrivilegeError) as info, ro.pg_connect("coordinator") as conn:
            conn.execute("SELECT count(*) FROM content_metadata")
        assert info.value.node == "coordinator"
        assert "permission denied for table content_metadata" in info.value.message
        assert "GRANT SELECT ON TABLE content_metadata" in (info.value.hint or "")
        res = cli("verify", "-f", str(ro_path), "--json", password=reader_pw)
        assert res.returncode in (ExitCode.CHECK_FAILED, ExitCode.CHECK_ERROR), res.stdout + res.stderr
        assert "coordinator: missing privilege" in res.stdout, res.stdout
    finally:
        with servers[0].connect("metadata_db") as conn:
            conn.execute("GRANT SELECT ON content_metadata TO ops_reader")


def test_scale_registers_and_drains_workers_that_already_run(hand: Any) -> None:
    from streamctl.scale import scale_workers

    cluster, servers, path = hand
    extra = cluster.server(citus=True)  # a third worker the operator started; streamctl only registers it
    with extra.connect() as conn:
        conn.execute("CREATE DATABASE metadata_db")
    data = yaml.safe_load(path.read_text())
    data["metadata"]["workers"]["nodes"].append({"port": extra.port})
    scaled = path.parent / "scaled.yaml"
    scaled.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx = context(scaled, cluster.password)
    Runner(ctx, select_backend(ctx), configure_external=True).up()
    grown = scale_workers(ctx, select_backend(ctx), 3, update_file=False, configure=True)
    assert grown.added == ["worker-3"]
    with servers[0].connect("metadata_db") as conn:
        placed = conn.execute("SELECT count(*) FROM citus_shards WHERE nodeport = %s", (extra.port,)).fetchone()
    assert placed is not None and placed[0] > 0
    ctx3 = context(scaled, cluster.password)
    ctx3.topology = ctx3.topology.model_copy(update={"metadata": ctx3.topology.metadata.model_copy(
        update={"workers": ctx3.topology.metadata.workers.model_copy(update={"count": 3})})})
    shrunk = scale_workers(ctx3, select_backend(ctx3), 2, update_file=False)
    assert shrunk.removed == ["worker-3"]
    with servers[0].connect("metadata_db") as conn:
        left = conn.execute("SELECT count(*) FROM pg_dist_node WHERE nodeport = %s", (extra.port,)).fetchone()
    assert left == (0,)
    with extra.connect() as conn:  # drained and unregistered, but still running: never stopped
        assert conn.execute("SELECT 1").fetchone() == (1,)


def catalog_snapshot(server: HandServer) -> dict[str, Any]:
    """What a configuration step could change on a node: relations, roles, extensions, Citus's nodes and
    node-to-node credentials (the rows themselves)."""
    with server.connect("metadata_db") as conn:
        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query).fetchall()]
        return {"relations": rows("SELECT oid::regclass::text FROM pg_class WHERE relnamespace = "
                                  "'public'::regnamespace ORDER BY 1"),
                "roles": rows("SELECT rolname FROM pg_roles ORDER BY 1"),
                "extensions": rows("SELECT extname FROM pg_extension ORDER BY 1"),
                "nodes": rows("SELECT nodename, nodeport, isactive FROM pg_dist_node ORDER BY 1, 2"),
                "authinfo": rows("SELECT nodeid, rolename, authinfo FROM pg_dist_authinfo ORDER BY 1, 2")}


def test_scale_touches_no_external_node_unless_configure() -> None:
    """`scale` adds a worker: without --configure no external node changes (not the coordinator's missing
    schema, not the new worker's missing credentials) and the scale is refused with the differences;
    with --configure the new worker gets its credentials and joins, and the coordinator is still only
    told about it (its schema is `up --configure`'s business, not scale's)."""
    from streamctl.scale import scale_workers

    cluster = HandCluster(secrets.token_urlsafe(16), citus_bindir())
    try:
        servers = _bare_citus(cluster, workers=1)
        extra = cluster.server(citus=True)  # the operator started it; extension there, credentials not
        with extra.connect() as conn:
            conn.execute("CREATE DATABASE metadata_db")
        with extra.connect("metadata_db") as conn:
            conn.execute("CREATE EXTENSION citus")
        path = external_topology(traversable_tmpdir(), servers)
        data = yaml.safe_load(path.read_text())
        data["metadata"]["workers"]["nodes"].append({"port": extra.port})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        every = [*servers, extra]
        before = [catalog_snapshot(s) for s in every]

        ctx = context(path, cluster.password)
        with pytest.raises(DriftError) as info:
            scale_workers(ctx, select_backend(ctx), 2, update_file=False)
        assert info.value.exit_code == ExitCode.CHECK_FAILED
        assert any(d.startswith("worker-2: citus extension: store node-to-node credentials")
                   for d in info.value.details), info.value.details
        assert not any(d.startswith("coordinator:") for d in info.value.details), info.value.details
        assert "--configure" in (info.value.hint or "")
        assert [catalog_snapshot(s) for s in every] == before, "scale changed an external node unasked"

        ctx = context(path, cluster.password)
        grown = scale_workers(ctx, select_backend(ctx), 2, update_file=False, configure=True)
        assert grown.added == ["worker-2"]
        after = catalog_snapshot(extra)
        assert (0, USER, f"password={cluster.password}") in after["authinfo"]
        coordinator = catalog_snapshot(servers[0])
        assert ("127.0.0.1", extra.port, True) in coordinator["nodes"]
        assert coordinator == {**before[0], "nodes": coordinator["nodes"]}
        worker = catalog_snapshot(servers[1])  # Citus syncs its node list to the workers itself
        assert worker == {**before[1], "nodes": worker["nodes"]}
    finally:
        cluster.stop()
