"""Executes a plan: nodes in parallel (launch.py), then configuration steps in order, independent ones at
once (configure.py); takes a cluster down (down.py). Emits events, never prints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streamctl import ownership
from streamctl.backends.base import Action, Backend
from streamctl.citus.nodes import ha_group_refusal
from streamctl.config.model import Node
from streamctl.configure import configure
from streamctl.context import ClusterContext
from streamctl.down import take_down
from streamctl.drift import DriftError, external_differences
from streamctl.errors import HostsUnreachable, StepError
from streamctl.events import Emit, Event, ignore
from streamctl.launch import check_ports, converge_nodes
from streamctl.plan import NodeStep, Plan, observe_and_plan, pending_configuration
from streamctl.retire import remove_orphans as remove_orphans_of
from streamctl.secrets_rotation import finish_pending, pending_rotations
from streamctl.services import configuration_steps
from streamctl.steps import ConfigStep
from streamctl.takeover import check_adopt


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

    def only_checked(self, node_name: str) -> bool:
        """An external node's steps only check what they would change, unless `up --configure`."""
        return self.is_external(node_name) and not self.configure_external

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
            plan.configuration = [*pending_rotations(self.ctx),
                                  *pending_configuration(self.config_steps(), self.only_checked)]
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
        refusal = ha_group_refusal(self.ctx) if self.ctx.topology.ha_on and self.ctx.topology.citus else None
        if refusal is not None:
            raise refusal
        removed = remove_orphans_of(self.ctx, self.backend, self.emit) if remove_orphans else []
        plan = Plan(self.ctx.topology.cluster, self.backend.name, observe_and_plan(self.backend, reachable))
        plan.nodes = steps = [s for s in plan.nodes if self.in_scope(s.node.name)]
        plan.orphans = [o.name for o in self.ctx.orphans()]
        check_ports(self.ctx, steps)
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
        result.ready_seconds = converge_nodes(self.backend, steps, self.emit, self.timeout)
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

    def _configure(self, result: UpResult, skip: set[str] | None = None) -> None:
        """Every configuration step (configure.py); the steps of the nodes in `skip` (unreachable) are
        left out, and so is every step that needs one of them. The first failure in list order is raised."""
        done = configure(self.config_steps(), self.emit, self.only_checked, skip)
        result.differences += done.differences
        result.config_changes += done.changes
        if done.errors:
            raise done.errors[0]

    # -- down ---------------------------------------------------------------------------------------
    def down(self, volumes: bool = False, skip_external: bool = False, remove_orphans: bool = False) -> list[str]:
        """Stop every node (keeping data), or with volumes=True remove nodes, data and state (down.py)."""
        return take_down(self.ctx, self.backend, self.emit, volumes, skip_external, remove_orphans)
