"""Pure pieces: the convergence rule, the plan, managed pg_hba, schema files, readiness."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamctl.backends.base import Action, NodeState, Observation, fingerprint, made_as
from streamctl.config.load import parse_topology
from streamctl.errors import ReadinessTimeout
from streamctl.plan import decide, plan_nodes
from streamctl.readiness import Readiness
from streamctl.services.postgres import HbaRule, render_hba, schema_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("state", "fp", "desired", "action"), [
    (NodeState.MISSING, None, "a", Action.CREATE),
    (NodeState.RUNNING, "a", "a", Action.NOOP),
    (NodeState.STOPPED, "a", "a", Action.START),
    (NodeState.RUNNING, "a", "b", Action.RECREATE),
    (NodeState.STOPPED, "a", "b", Action.RECREATE),
    (NodeState.RUNNING, None, "b", Action.NOOP),  # created before fingerprints were recorded
])
def test_decide(state: NodeState, fp: str | None, desired: str, action: Action) -> None:
    assert decide(Observation("n", state, fp), desired) is action


def test_plan_is_pure_and_ordered() -> None:
    t = parse_topology({}, env={})
    nodes = t.nodes()
    obs = {n.name: Observation(n.name, NodeState.RUNNING, "x") for n in nodes}
    obs["redis"] = Observation("redis", NodeState.MISSING)
    desired = {n.name: "x" for n in nodes}
    first = plan_nodes(nodes, obs, desired)
    assert first == plan_nodes(nodes, obs, desired)
    assert [s.node.name for s in first] == [n.name for n in nodes]
    assert {s.node.name: s.action for s in first}["redis"] is Action.CREATE
    assert sum(s.action is Action.NOOP for s in first) == len(nodes) - 1


def test_fingerprint_changes_with_definition_only() -> None:
    assert fingerprint({"image": "a", "env": {"X": "1"}}) == fingerprint({"env": {"X": "1"}, "image": "a"})
    assert fingerprint({"image": "a"}) != fingerprint({"image": "b"})


def test_a_fingerprint_of_the_older_form_counts_as_todays_while_they_agree() -> None:
    def definition(legacy: bool, secret: str = "s1") -> dict[str, str]:
        return {"config": secret if legacy else "<masked>"}

    old, today = fingerprint(definition(True)), fingerprint(definition(False))
    assert made_as(old, definition) == today  # made before the passwords were left out: nothing restarts
    assert made_as(today, definition) == today
    assert made_as(None, definition) is None
    rotated = fingerprint(definition(True, "s0"))  # made with a password that is no longer the one in force
    assert made_as(rotated, definition) == rotated != today


def test_hba_admits_a_role_only_from_its_addresses() -> None:
    text = render_hba("streamctl", [HbaRule("analytics_db", "repl", ("10.0.0.5", "10.0.0.6")),
                                    HbaRule("analytics_db", "fdw", ())], tls=False)
    lines = [line.split() for line in text.splitlines() if line.startswith("host")]
    repl = [ln for ln in lines if ln[2] == "repl"]
    assert repl == [["host", "analytics_db", "repl", "10.0.0.5/32", "scram-sha-256"],
                    ["host", "analytics_db", "repl", "10.0.0.6/32", "scram-sha-256"],
                    ["host", "all", "repl", "all", "reject"]]
    # a role with no allowed address is rejected everywhere, and its reject comes before the catch-all
    fdw_reject = lines.index(["host", "all", "fdw", "all", "reject"])
    assert fdw_reject < lines.index(["host", "all", "all", "all", "scram-sha-256"])
    assert not any(ln[2] == "fdw" and ln[-1] != "reject" for ln in lines)
    assert "trust" not in text


def test_hba_with_tls_admits_network_logins_only_over_tls() -> None:
    text = render_hba("streamctl", [HbaRule("analytics_db", "repl", ("10.0.0.5",))], tls=True)
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    admitting = [ln for ln in lines if ln[0] != "local" and ln[-1] != "reject"]
    assert admitting and all(ln[0] == "hostssl" for ln in admitting)
    assert ["hostssl", "analytics_db", "repl", "10.0.0.5/32", "scram-sha-256"] in lines


def test_schema_files_are_ordered_and_phased() -> None:
    meta = schema_files("metadata")
    assert [f.version for f in meta] == sorted(f.version for f in meta)
    assert [f.after_distribution for f in meta] == [False, True]
    assert all(not f.after_distribution for f in schema_files("analytics"))


def test_readiness_times_out_with_logs_and_fails_fast_when_dead() -> None:
    calls = []

    def never() -> bool:
        calls.append(1)
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ReadinessTimeout) as info:
        Readiness("db", never, timeout=0.3, interval=0.05, logs=lambda: ["FATAL: boom"]).wait()
    assert "not ready after" in info.value.message
    assert "last probe error: connection refused" in info.value.details
    assert "  FATAL: boom" in info.value.details
    assert len(calls) > 2
    with pytest.raises(ReadinessTimeout, match="stopped while starting"):
        Readiness("db", never, timeout=30, interval=0.01, alive=lambda: False, grace=0.05).wait()


def test_readiness_returns_when_probe_succeeds() -> None:
    answers = iter([False, False, True])
    assert Readiness("db", lambda: next(answers), timeout=5, interval=0.01).wait() < 5


def test_barrier_steps_wait_for_all_before_them_except_their_own_run() -> None:
    """Steps without `after` keep the old order: each waits for everything listed before it, except
    same-named steps on distinct nodes in a row, which run at once."""
    from streamctl.steps import ConfigStep, dependencies

    def step(node: str, name: str) -> ConfigStep:
        return ConfigStep(node, name, lambda: [], lambda: None)

    steps = [step("a", "database"), step("b", "database"), step("a", "schema"), step("a", "grant"),
             step("a", "grant"), step("b", "grant"), step("c", "database")]
    assert dependencies(steps) == [frozenset(), frozenset(), {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3},
                                   {0, 1, 2, 3, 4, 5}]


def test_steps_with_after_wait_for_their_node_and_what_they_name_only() -> None:
    from streamctl.steps import ConfigStep, dependencies

    def step(node: str, name: str, after: tuple[tuple[str, str], ...] | None = ()) -> ConfigStep:
        return ConfigStep(node, name, lambda: [], lambda: None, after=after)

    steps = [step("p", "schema"), step("r", "schema"), step("p", "publication"), step("c", "schema"),
             step("r", "subscription", after=(("p", "publication"), ("x", "not listed"))),
             step("c", "fdw", after=(("p", "schema"),)), step("c", "barrier", after=None)]
    assert dependencies(steps) == [frozenset(), frozenset(), {0}, frozenset(), {1, 2}, {0, 3},
                                   {0, 1, 2, 3, 4, 5}]
    beside = [step("p", "schema"), ConfigStep("p", "hba", lambda: [], lambda: None, after=(), in_node_order=False),
              step("p", "publication")]
    assert dependencies(beside) == [frozenset(), frozenset(), {0, 1}]  # beside its node's steps, not after


def test_steps_of_unreachable_nodes_and_what_needs_them_are_left_out() -> None:
    """A lost Swarm host: its nodes' steps go, and so does every step naming one of them (transitively);
    a barrier stays, waiting only for what still runs."""
    from streamctl.steps import ConfigStep, without_nodes

    def step(node: str, name: str, after: tuple[tuple[str, str], ...] | None = ()) -> ConfigStep:
        return ConfigStep(node, name, lambda: [], lambda: None, after=after)

    steps = [step("p", "schema"), step("r", "schema"), step("p", "publication"),
             step("r", "subscription", after=(("p", "publication"),)),
             step("c", "fdw", after=(("r", "subscription"),)), step("c", "stats"),
             step("c", "barrier", after=None)]
    kept, needs = without_nodes(steps, {"r"})
    assert [(s.node, s.name) for s in kept] == [("p", "schema"), ("p", "publication"), ("c", "stats"),
                                                ("c", "barrier")]
    assert needs == [frozenset(), {0}, frozenset(), {0, 1, 2}]


def test_up_runs_the_replica_lane_beside_the_metadata_lane() -> None:
    """The platform's real steps: the subscription waits for the primary's role, publication and pg_hba,
    never for the coordinator's schema; the FDW waits for the primary's reader role."""
    from streamctl.context import ClusterContext
    from streamctl.services import configuration_steps
    from streamctl.steps import dependencies

    topo = parse_topology(yaml.safe_load((ROOT / "examples/no-citus.yaml").read_text()))
    ctx = ClusterContext.build(topo, None, "/nonexistent-state")

    class NoBackend:
        name = "local"

        def source_address(self, node: object) -> str:
            return "127.0.0.1"

    steps = configuration_steps(ctx, NoBackend())  # type: ignore[arg-type]
    needs = dependencies(steps)
    key = [(s.node, s.name) for s in steps]
    sub = key.index(("analytics-replica-1", "subscription"))
    waited = {key[j] for j in needs[sub]}
    assert {("analytics-primary", "publication"), ("analytics-primary", "replication role"),
            ("analytics-primary", "access rules (pg_hba)")} <= waited
    assert not any(node == "coordinator" for node, _ in waited)
    fdw = key.index(("coordinator", "fdw"))
    assert ("analytics-primary", "fdw reader role") in {key[j] for j in needs[fdw]}


def test_orphans_are_rebuilt_from_the_state_and_shown_in_the_plan(tmp_path: Path) -> None:
    """A node the state recorded and the topology no longer has: a node a backend can stop, and a plan row."""
    from streamctl.context import ClusterContext
    from streamctl.plan import ORPHAN_DETAIL, Plan
    from streamctl.state import Endpoint

    t = parse_topology({"backend": "local"}, env={})
    ctx = ClusterContext.build(t, tmp_path / "topology.yaml")
    ctx.store.record_endpoints("local", [
        Endpoint("analytics-replica-1", "analytics_replica", "postgres", "local", "127.0.0.1", 15443,
                 "127.0.0.1", 15443, "analytics_db"),
        Endpoint("analytics-replica-9", "analytics_replica", "postgres", "local", "127.0.0.1", 15499,
                 "127.0.0.1", 15499, "analytics_db"),
        Endpoint("old-cache", "redis", "redis", "docker", "127.0.0.1", 16400, "old-cache", 6379)])
    orphans = {o.name: o for o in ctx.orphans()}
    assert sorted(orphans) == ["analytics-replica-9", "old-cache"]
    replica = orphans["analytics-replica-9"]
    assert (replica.port, replica.database, replica.backend, replica.is_external) == (15499, "analytics_db",
                                                                                      "local", False)
    assert dict(replica.settings)["wal_level"] == "logical"
    assert orphans["old-cache"].backend == "docker" and orphans["old-cache"].settings == ()
    rows = Plan("c", "local", [], orphans=sorted(orphans)).rows()
    assert [(r.node, r.action, r.detail) for r in rows[:2]] == [("analytics-replica-9", "orphan", ORPHAN_DETAIL),
                                                                ("old-cache", "orphan", ORPHAN_DETAIL)]
    ctx.store.forget(["old-cache"])
    assert [o.name for o in ctx.orphans()] == ["analytics-replica-9"]
