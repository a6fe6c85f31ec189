"""Executes a plan: nodes in parallel, then configuration steps in order; emits events, never prints."""

from __future__ import annotations

import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streamctl.backends.base import Action, Backend, NodeState
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError, StepError, StreamctlError
from streamctl.events import Emit, Event, EventKind, ignore
from streamctl.plan import NodeStep, Plan, observe_and_plan, pending_configuration
from streamctl.services import configuration_steps
from streamctl.steps import ConfigStep


@dataclass
class UpResult:
    """What `up` did: the plan it executed, and the configuration it changed."""

    plan: Plan
    config_changes: list[tuple[str, str, list[str]]] = field(default_factory=list)
    seconds: float = 0.0
    ready_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def node_steps(self) -> list[NodeStep]:
        return self.plan.nodes

    @property
    def changed(self) -> bool:
        return any(s.action is not Action.NOOP for s in self.node_steps) or bool(self.config_changes)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.plan.cluster, "backend": self.plan.backend, "changed": self.changed,
                "seconds": round(self.seconds, 3),
                "nodes": [{"name": s.node.name, "action": s.action.value} for s in self.node_steps],
                "configured": [{"node": n, "step": s, "changes": c} for n, s, c in self.config_changes]}


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Runner:
    """Brings a cluster to the state its topology describes, and takes it down again."""

    def __init__(self, ctx: ClusterContext, backend: Backend, emit: Emit | None = None,
                 timeout: float = 120.0) -> None:
        self.ctx = ctx
        self.backend = backend
        self.emit: Emit = emit or ignore
        self.timeout = timeout

    @property
    def nodes(self) -> list[Node]:
        return self.ctx.topology.nodes()

    def plan(self) -> list[NodeStep]:
        return observe_and_plan(self.backend, self.nodes)

    def preview(self) -> Plan:
        """What `up` would do, changing nothing: node actions, then each configuration step's pending
        changes (read from the live nodes, so only once every node runs)."""
        self.backend.preflight(self.nodes)
        plan = Plan(self.ctx.topology.cluster, self.backend.name, self.plan())
        if plan.all_running:
            plan.configuration = pending_configuration(self.config_steps())
        return plan

    def config_steps(self) -> list[ConfigStep]:
        return configuration_steps(self.ctx, self.backend)

    # -- up ---------------------------------------------------------------------------------------
    def up(self) -> UpResult:
        started = time.monotonic()
        self.backend.preflight(self.nodes)
        plan = Plan(self.ctx.topology.cluster, self.backend.name, self.plan())
        steps = plan.nodes
        self._check_ports(steps)
        self.ctx.store.secrets(self.ctx.topology, create=True)
        self.ctx.__dict__.pop("secrets", None)  # re-read: `up` may just have generated them
        result = UpResult(plan)
        # Endpoints follow from the topology: record them first so `logs`/`url` work even if `up` fails.
        self.ctx.store.record_endpoints(self.backend.name, [self.backend.endpoint(n) for n in self.nodes])
        result.ready_seconds = self._converge_nodes(steps)
        self._configure(result)
        result.seconds = time.monotonic() - started
        return result

    def _check_ports(self, steps: list[NodeStep]) -> None:
        busy = [f"{s.node.yaml_path}.port: {s.node.host}:{s.node.port} is already in use by another program"
                for s in steps if s.observation.state is not NodeState.RUNNING
                and _port_in_use(s.node.host, s.node.port)]
        if busy:
            raise PreflightError("ports needed by the topology are taken", details=busy,
                                 hint="stop what holds them, or change the ports in the topology")

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
        with ThreadPoolExecutor(max_workers=max(1, len(steps))) as pool:
            futures = {pool.submit(one, s): s for s in steps}
            for fut, step in futures.items():
                try:
                    ready[step.node.name] = fut.result()
                except StreamctlError as exc:
                    self.emit(Event("fail", step.node.name, step.action.value, exc.message))
                    errors.append(exc)
        if errors:
            first = errors[0]
            if len(errors) > 1:
                first.details = [*first.details, *(f"also: {e.message}" for e in errors[1:])]
            raise first
        return ready

    def _configure(self, result: UpResult) -> None:
        for step in self.config_steps():
            t0 = time.monotonic()
            try:
                pending = step.pending()
                if not pending:
                    self.emit(Event("noop", step.node, step.name, "already configured"))
                    continue
                self.emit(Event("begin", step.node, step.name, "; ".join(pending)))
                step.apply()
            except StreamctlError as exc:
                self.emit(Event("fail", step.node, step.name, exc.message))
                raise StepError(f"{step.node}: step '{step.name}' failed: {exc.message}",
                                hint=exc.hint or "fix the cause and run `streamctl up` again: it resumes "
                                                 "where it stopped", details=exc.details) from exc
            except Exception as exc:
                lines = str(exc).strip().splitlines() or [type(exc).__name__]
                self.emit(Event("fail", step.node, step.name, lines[0]))
                raise StepError(f"{step.node}: step '{step.name}' failed: {lines[0]}", details=lines[1:],
                                hint="fix the cause and run `streamctl up` again: it resumes where it "
                                     "stopped") from exc
            result.config_changes.append((step.node, step.name, pending))
            self.emit(Event("done", step.node, step.name, "; ".join(pending), time.monotonic() - t0))

    # -- down -------------------------------------------------------------------------------------
    def down(self, volumes: bool = False) -> list[str]:
        """Stop every node (keeping data), or with volumes=True remove nodes, data and state."""
        done: list[str] = []

        def one(node: Node) -> None:
            self.emit(Event("begin", node.name, "remove" if volumes else "stop"))
            if volumes:
                self.backend.remove(node, volumes=True)
            else:
                self.backend.stop(node)
            self.emit(Event("done", node.name, "remove" if volumes else "stop"))
            done.append(node.name)

        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            list(pool.map(one, self.nodes))
        self.backend.teardown(volumes)
        if volumes and self.ctx.store.root.exists():
            shutil.rmtree(self.ctx.store.root)
        return done
