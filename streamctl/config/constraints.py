"""Swarm placement constraints: their syntax, which ones apply to a node, and matching them against a host.

Pure functions, so the topology is checked before any side effect and the backend can prove a constraint
satisfiable against the swarm's hosts before it creates anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from streamctl.config.model import Node, Role, Topology

# The attributes Swarm matches (docker service create --constraint), and its two operators.
_EXPR = re.compile(r"^\s*(node\.id|node\.hostname|node\.role|node\.platform\.os|node\.platform\.arch|"
                   r"node\.labels\.[A-Za-z0-9_.\-]+|engine\.labels\.[A-Za-z0-9_.\-]+)\s*(==|!=)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value}"


@dataclass(frozen=True)
class HostFacts:
    """What a constraint can look at on one Swarm host (from the nodes API)."""

    id: str
    hostname: str
    role: str  # manager | worker
    os: str = "linux"
    arch: str = "x86_64"
    labels: dict[str, str] = field(default_factory=dict)
    engine_labels: dict[str, str] = field(default_factory=dict)


def parse(expr: str) -> Constraint:
    """`node.labels.tier == db` -> Constraint; ValueError saying what is accepted otherwise."""
    m = _EXPR.match(expr)
    if m is None:
        raise ValueError(f"{expr!r} is not a Swarm constraint: write ATTRIBUTE == VALUE or ATTRIBUTE != VALUE, "
                         "with ATTRIBUTE one of node.id, node.hostname, node.role, node.platform.os, "
                         "node.platform.arch, node.labels.NAME, engine.labels.NAME")
    key, op, value = m.groups()
    if key == "node.role" and value.lower() not in ("manager", "worker"):
        raise ValueError(f"{expr!r}: node.role is manager or worker, not {value!r}")
    return Constraint(key, op, value)


def syntax_errors(t: Topology) -> list[str]:
    """Every bad key or expression of the placement section, with its YAML path."""
    errors: list[str] = []
    roles = {r.value for r in Role}
    names = {n.name for n in t.nodes()}
    for section, known, what in (("roles", roles, "role"), ("nodes", names, "node")):
        for key, exprs in getattr(t.placement, section).items():
            if key not in known:
                errors.append(f"placement.{section}.{key}: unknown {what} (known: {', '.join(sorted(known))})")
            for i, expr in enumerate(exprs):
                try:
                    parse(expr)
                except ValueError as exc:
                    errors.append(f"placement.{section}.{key}[{i}]: {exc}")
    return errors


def for_node(t: Topology, node: Node) -> tuple[Constraint, ...]:
    """The node's constraints: those of its role, then its own (a host must satisfy all of them)."""
    exprs = (*t.placement.roles.get(node.role.value, ()), *t.placement.nodes.get(node.name, ()))
    return tuple(parse(e) for e in exprs)


def _attribute(host: HostFacts, key: str) -> str | None:
    if key.startswith("node.labels."):
        return host.labels.get(key.removeprefix("node.labels."))
    if key.startswith("engine.labels."):
        return host.engine_labels.get(key.removeprefix("engine.labels."))
    return {"node.id": host.id, "node.hostname": host.hostname, "node.role": host.role,
            "node.platform.os": host.os, "node.platform.arch": host.arch}[key]


def matches(host: HostFacts, constraints: tuple[Constraint, ...]) -> bool:
    """Swarm's rule: every constraint holds; a missing label equals nothing (so `!=` holds)."""
    for c in constraints:
        actual = _attribute(host, c.key)
        equal = actual is not None and actual.lower() == c.value.lower()
        if equal != (c.op == "=="):
            return False
    return True
