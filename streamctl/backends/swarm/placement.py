"""Choosing, once, the Swarm host each new service lives on; pure, so it is decided before any change.

A node's volume lives on the host where it first ran, so streamctl picks that host itself and pins the
service to it (`node.id == ...`): Swarm can never reschedule it onto an empty volume elsewhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from streamctl.config.constraints import Constraint, HostFacts, matches


@dataclass(frozen=True)
class Pin:
    """Where a node lives: the Swarm node id, plus hostname and address for messages and endpoints."""

    id: str
    hostname: str
    addr: str

    def describe(self) -> str:
        return f"{self.hostname} (Swarm node {self.id[:12]})"


@dataclass(frozen=True)
class Want:
    node: str
    role: str
    constraints: tuple[Constraint, ...]


class Unsatisfiable(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def assign(wants: list[Want], hosts: list[HostFacts], placed: dict[str, tuple[str, str]],
           spread: bool = True) -> dict[str, HostFacts]:
    """A host for every wanted node. `hosts`: the ready, active ones; `placed`: node -> (host id, role) of
    services already pinned. Spread: fewest of the same role, then fewest of the cluster; else pack."""
    per_role: Counter[tuple[str, str]] = Counter((host, role) for host, role in placed.values())
    per_host: Counter[str] = Counter(host for host, _ in placed.values())
    out: dict[str, HostFacts] = {}
    problems: list[str] = []
    for want in wants:
        fit = [h for h in hosts if matches(h, want.constraints)]
        if not fit:
            rules = " and ".join(str(c) for c in want.constraints) or "no constraint"
            seen = ", ".join(f"{h.hostname} ({h.role})" for h in hosts) or "none"
            problems.append(f"{want.node}: no ready, active Swarm host satisfies {rules} (hosts: {seen})")
            continue
        if spread:
            host = min(fit, key=lambda h: (per_role[(h.id, want.role)], per_host[h.id], h.hostname, h.id))
        else:
            host = min(fit, key=lambda h: (-per_host[h.id], h.hostname, h.id))
        out[want.node] = host
        per_role[(host.id, want.role)] += 1
        per_host[host.id] += 1
    if problems:
        raise Unsatisfiable(problems)
    return out
