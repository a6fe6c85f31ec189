"""Executes a plan: nodes in parallel, then configuration steps in order (independent ones at once);
emits events, never prints."""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from streamctl import ownership, parallel
from streamctl.backends.base import Action, Backend, NodeState
from streamctl.backends.external import refuse_down
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.drift import DriftError, external_differences
from streamctl.errors import HostsUnreachable, PreflightError, StepError, StreamctlError
from streamctl.events import Emit, Event, EventKind, ignore
from streamctl.plan import NodeStep, Plan, observe_and_plan, pending_configuration
from streamctl.retire import backend_running, drop_replica_slot, release_replica
from streamctl.retire import remove_orphans as remove_orphans_of
from streamctl.secrets_rotation import finish_pending, pending_rotations
from streamctl.services import configuration_steps, monitoring
from streamctl.steps import ConfigStep, dependencies, without_nodes
from streamctl.takeover import check_adopt

MAX_CONFIG_THREADS = 8  # steps of distinct nodes at once (each holds a connection or two)

# What one step ended in: its change, None (converged already), the differences an external node
# only checked has, or the failure.
StepOutcome = tuple[str, str, list[str]] | list[str] | StepError | None


@dataclass
class UpResult:
    """What `up` did: the plan it executed, and the configuration it changed."""

    plan: Plan
    config_changes: list[tuple[str, str, list[str]]] = field(default_factory=list)
    seconds: float = 0.0
    ready_seconds: dict[str, float] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)  # external nodes vs the topology (not changed)
    orphans: list[str] = field(default_factory=list)  # nodes the state knows, the topology no longer has
    removed_orphans: list[str] = field(default_factory=list)  # removed by `up --remove-orphans`

    @property
    def node_steps(self) -> list[NodeStep]:
        return self.plan.nodes

    @property
    def changed(self) -> bool:
        return (any(s.action is not Action.NOOP for s in self.node_steps) or bool(self.config_changes)
                or bool(self.removed_orphans))

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.plan.cluster, "backend": self.plan.backend, "changed": self.changed,
                "seconds": round(self.seconds, 3),
                "nodes": [{"name": s.node.name, "action": s.action.value} for s in self.node_steps],
                "configured": [{"node": n, "step": s, "changes": c} for n, s, c in self.config_changes],
                "orphans": self.orphans, "removed_orphans": self.removed_orphans}


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Runner:
    """Brings a cluster to the state its topology describes, and takes it down again."""

    def __init__(self, ctx: ClusterContext, backend: Backend, emit: Emit | None = None,
                 timeout: float = 120.0, configure_external: bool = False,
                 scope: frozenset[str] | None = None) -> None:
        self.ctx = ctx
        self.backend = backend
        self.emit: Emit = emit or ignore
        self.timeout = timeout
        self.configure_external = configure_external  # `up --configure`: change external nodes too
        # Only these nodes are started and configured (`scale`: the workers it adds); None: every node.
        self.scope = scope

    def in_scope(self, node_name: str) -> bool:
        return self.scope is None or node_name in self.scope

    def is_external(self, node_name: str) -> bool:
        node = self.ctx.topology.node(node_name)
        return node is not None and node.is_external

    @property
    def nodes(self) -> list[Node]:
        return self.ctx.topology.nodes()

    def plan(self) -> list[NodeStep]:
        return observe_and_plan(self.backend, self.nodes)

    def preview(self, remove_orphans: bool = False) -> Plan:
        """What `up` would do, changing nothing: node actions, then each configuration step's pending
        changes (read from the live nodes, so only once every node runs)."""
        self.backend.preflight(self.nodes)
        plan = Plan(self.ctx.topology.cluster, self.backend.name, self.plan(), remove_orphans=remove_orphans)
        plan.orphans = [o.name for o in self.ctx.orphans()]
        if plan.all_running:
            if any(n.is_external for n in self.nodes):
                plan.differences = external_differences(self.ctx)
            plan.configuration = [*pending_rotations(self.ctx), *pending_configuration(
                self.config_steps(), lambda node: self.is_external(node) and not self.configure_external)]
        return plan

    def config_steps(self) -> list[ConfigStep]:
        return [s for s in configuration_steps(self.ctx, self.backend) if self.in_scope(s.node)]

    # -- up ---------------------------------------------------------------------------------------
    def unreachable(self) -> dict[str, str]:
        """Nodes pinned to a host that cannot run them now (Swarm): node -> why. Other backends: none."""
        probe = getattr(self.backend, "unreachable", None)
        return probe(self.nodes) if probe is not None else {}

    def up(self, remove_orphans: bool = False) -> UpResult:
        """remove_orphans: first remove the nodes the state knows and the topology no longer has (see
        retire.remove_orphans); without it they are left as they are, and named in the result. Nodes pinned
        to a host that cannot run them now are left as they are; the others converge (HostsUnreachable)."""
        started = time.monotonic()
        lost = self.unreachable()
        reachable = [n for n in self.nodes if n.name not in lost]
        self.backend.preflight(reachable)
        removed = remove_orphans_of(self.ctx, self.backend, self.emit) if remove_orphans else []
        plan = Plan(self.ctx.topology.cluster, self.backend.name, observe_and_plan(self.backend, reachable))
        plan.nodes = steps = [s for s in plan.nodes if self.in_scope(s.node.name)]
        plan.orphans = [o.name for o in self.ctx.orphans()]
        self._check_ports(steps)
        if self.ctx.adopt:
            check_adopt(self.ctx, self.backend, steps)
        # The instance id goes into the state before anything carries it (and what is taken over, until done).
        ownership.record(self.ctx.store, self.ctx.ownership)
        self.backend.prepare([(s.node, s.action) for s in steps if s.action is not Action.NOOP],
                             lambda node, message: self.emit(Event("info", node, "prepare", message)))
        self.ctx.create_secrets()
        if self.ctx.tls_on:
            self.ctx.tls.ensure_ca()  # once, before the nodes' threads each get their certificate
        result = UpResult(plan, orphans=plan.orphans, removed_orphans=removed)
        # Endpoints follow from the topology: record them first so `logs`/`url` work even if `up` fails.
        # Orphans stay recorded: `status` and `down` must still find them.
        known = self.ctx.store.endpoints()
        self.ctx.store.record_endpoints(self.backend.name, [self.backend.endpoint(n) for n in self.nodes]
                                        + [known[name] for name in plan.orphans])
        result.ready_seconds = self._converge_nodes(steps)
        ownership.finish(self.ctx.store)  # every node now carries our instance id
        if any(n.is_external and self.in_scope(n.name) for n in self.nodes):
            result.differences += self._scoped(external_differences(self.ctx))
        # A changed secret (topology edit, or a rotation that stopped) reaches every node before the steps
        # log in with it; until then logins fall back to the applied value.
        result.config_changes += finish_pending(self.ctx, self.backend, self.emit)
        with self.ctx.kept_connections():
            try:
                self._configure(result, skip=set(lost))
            except StepError as exc:
                if not lost:
                    raise
                lost = {**lost, "": f"also: {exc.message}"}
        result.seconds = time.monotonic() - started
        if lost:
            raise HostsUnreachable(f"{len(reachable)} node(s) converged; {len([k for k in lost if k])} node(s) "
                                   "are pinned to hosts that cannot run them now and were left as they are",
                                   details=list(lost.values()),
                                   hint="bring the hosts back (or `docker node update --availability active`) "
                                        "and run `streamctl up` again; nothing is moved to another host")
        if result.differences:
            raise DriftError(f"{len(result.differences)} difference(s) between the external nodes and the "
                             "topology; nothing was changed on them", details=result.differences,
                             hint="`streamctl up --dry-run` lists the steps; `streamctl up --configure` "
                                  "applies them to the external nodes")
        return result

    def _scoped(self, differences: list[str]) -> list[str]:
        """The differences of the nodes in scope: those that name another node are left out."""
        if self.scope is None:
            return differences
        others = {n.name for n in self.nodes} - self.scope
        return [d for d in differences if d.split(":", 1)[0] not in others]

    def _check_ports(self, steps: list[NodeStep]) -> None:
        orphans = {(o.host, o.port): o.name for o in self.ctx.orphans()}

        def holder(host: str, port: int) -> str:
            name = orphans.get((host, port))
            return f"orphan {name} (no longer in the topology)" if name else "another program"

        busy = [f"{s.node.yaml_path}.port: {s.node.host}:{s.node.port} is already in use by "
                f"{holder(s.node.host, s.node.port)}"
                for s in steps if s.observation.state is not NodeState.RUNNING and not s.node.is_external
                and _port_in_use(s.node.host, s.node.port)]
        if busy:
            hint = "stop what holds them, or change the ports in the topology"
            if any("orphan" in b for b in busy):
                hint = "`streamctl up --remove-orphans` removes the orphans first; or " + hint
            raise PreflightError("ports needed by the topology are taken", details=busy, hint=hint)

    def _converge_nodes(self, steps: list[NodeStep]) -> dict[str, float]:
        """Launch every node that needs it and wait for all of them, in parallel."""

        def one(step: NodeStep) -> float:
            name = step.node.name
            t0 = time.monotonic()
            if step.action is not Action.NOOP:
                self.emit(Event("begin", name, step.action.value, step.reason))
                try:
                    self.backend.apply(step.node, step.action)
                except StreamctlError as exc:
                    raise StepError(f"{name}: {step.action.value} failed: {exc.message}", hint=exc.hint,
                                    details=exc.details) from exc
            self.backend.readiness(step.node, self.timeout).wait()
            seconds = time.monotonic() - t0
            kind: EventKind = "noop" if step.action is Action.NOOP else "done"
            self.emit(Event(kind, name, step.action.value, "ready", seconds))
            return seconds

        errors: list[StreamctlError] = []
        ready: dict[str, float] = {}
        for outcome in parallel.each(steps, one):
            step = outcome.item
            if isinstance(outcome.error, StreamctlError):
                self.emit(Event("fail", step.node.name, step.action.value, outcome.error.message))
                errors.append(outcome.error)
            else:
                ready[step.node.name] = outcome.get()
        if errors:
            first = errors[0]
            if len(errors) > 1:
                first.details = [*first.details, *(f"also: {e.message}" for e in errors[1:])]
            raise first
        return ready

    def _configure(self, result: UpResult, skip: set[str] | None = None) -> None:
        """Every configuration step, each as soon as the steps it needs are done (steps.dependencies):
        one node's steps in order, independent nodes at once. After a failure nothing new starts; the
        steps already running finish, and the first failure in list order is raised. The steps of the
        nodes in `skip` (unreachable) are left out, and so is every step that needs one of them."""
        steps = self.config_steps()
        steps, needs = without_nodes(steps, skip) if skip else (steps, dependencies(steps))
        outcomes = parallel.by_needs(len(steps), needs, lambda i: self._step_or_check(steps[i]),
                                     MAX_CONFIG_THREADS, halt=lambda o: isinstance(o, StepError))
        for i in sorted(outcomes):
            outcome = outcomes[i]
            if isinstance(outcome, list):
                result.differences += outcome
            elif isinstance(outcome, tuple):
                result.config_changes.append(outcome)
        errors = [o for _, o in sorted(outcomes.items()) if isinstance(o, StepError)]
        if errors:
            raise errors[0]

    def _step_or_check(self, step: ConfigStep) -> StepOutcome:
        if self.is_external(step.node) and not self.configure_external:
            return self._check_only(step)
        return self._one_step(step)

    def _one_step(self, step: ConfigStep) -> StepOutcome:
        """Run one step: its change, None when converged already, or the StepError it failed with."""
        t0 = time.monotonic()
        try:
            pending = step.pending()
            if not pending:
                self.emit(Event("noop", step.node, step.name, "already configured"))
                return None
            self.emit(Event("begin", step.node, step.name, "; ".join(pending)))
            step.apply()
        except StreamctlError as exc:
            self.emit(Event("fail", step.node, step.name, exc.message))
            err = StepError(f"{step.node}: step '{step.name}' failed: {exc.message}",
                            hint=exc.hint or "fix the cause and run `streamctl up` again: it resumes "
                                             "where it stopped", details=exc.details)
            err.__cause__ = exc
            return err
        except Exception as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            self.emit(Event("fail", step.node, step.name, lines[0]))
            err = StepError(f"{step.node}: step '{step.name}' failed: {lines[0]}", details=lines[1:],
                            hint="fix the cause and run `streamctl up` again: it resumes where it stopped")
            err.__cause__ = exc
            return err
        self.emit(Event("done", step.node, step.name, "; ".join(pending), time.monotonic() - t0))
        return (step.node, step.name, pending)

    def _check_only(self, step: ConfigStep) -> list[str]:
        """An external node without --configure: report what the step would change, change nothing."""
        try:
            pending = step.pending()
        except StreamctlError as exc:
            pending = [f"cannot check: {exc.message}"]
        except Exception as exc:  # noqa: BLE001 - e.g. a table the step needs is missing: a difference
            text = str(exc).strip().splitlines()
            pending = [f"cannot check: {text[0] if text else type(exc).__name__}"]
        if pending:
            self.emit(Event("info", step.node, step.name, "differs: " + "; ".join(pending)))
        else:
            self.emit(Event("noop", step.node, step.name, "matches the topology"))
        return [f"{step.node}: {step.name}: {p}" for p in pending]

    # -- down ---------------------------------------------------------------------------------------
    def down(self, volumes: bool = False, skip_external: bool = False, remove_orphans: bool = False) -> list[str]:
        """Stop every node (keeping data), or with volumes=True remove nodes, data and state. External
        nodes are never touched: refused (exit 10) unless skip_external takes down only the others. Nodes
        the state knows and the topology no longer has (orphans) are stopped too, so no server of the
        cluster is left running; remove_orphans removes them first, with care (retire.remove_orphans)."""
        done: list[str] = []
        external = [n.name for n in self.nodes if n.is_external]
        if external and not skip_external:
            raise refuse_down(external)
        nodes = [n for n in self.nodes if not n.is_external]
        for node in nodes:  # before anything is stopped: raises when another state directory owns a node
            self.backend.observe(node)
        if remove_orphans and not volumes:  # with volumes everything goes: no shard needs to move first
            done += remove_orphans_of(self.ctx, self.backend, self.emit)
        nodes += [o for o in self.ctx.orphans() if backend_running(self.backend, o) is not None]
        primary = self.ctx.first(Role.ANALYTICS_PRIMARY)
        if volumes and primary is not None and primary.is_external:
            # The primary outlives this cluster's replicas: their slots must not stay behind on it.
            for replica in [n for n in nodes if n.role is Role.ANALYTICS_REPLICA]:
                release_replica(self.ctx, replica, self.emit)

        def one(node: Node) -> None:
            self.emit(Event("begin", node.name, "remove" if volumes else "stop"))
            if volumes:
                self.backend.remove(node, volumes=True)
            else:
                self.backend.stop(node)
            self.emit(Event("done", node.name, "remove" if volumes else "stop"))
            done.append(node.name)

        for outcome in parallel.each(nodes, one):
            outcome.get()  # the first failure, once every node has had its turn
        if volumes and primary is not None and primary.is_external:
            for replica in [n for n in nodes if n.role is Role.ANALYTICS_REPLICA]:
                drop_replica_slot(self.ctx, replica, self.emit)
        if self.ctx.topology.monitoring.prometheus:
            monitoring.stop(self.ctx, self.backend, volumes)
        self.backend.teardown(volumes)
        if volumes and self.ctx.store.root.exists():
            shutil.rmtree(self.ctx.store.root)
        return done
