"""Redis: password and persistence as the topology says. Key layout: streamctl.names (and the README)."""

from __future__ import annotations

from streamctl.backends.base import Backend
from streamctl.config.model import Node
from streamctl.context import ClusterContext
from streamctl.steps import ConfigStep

WANTED = {"appendonly": "yes", "protected-mode": "yes"}


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: Redis's settings, when Redis is on."""
    t = ctx.topology
    node = t.node(t.redis.name) if t.redis.enabled else None
    return [] if node is None else [redis_step(ctx, node)]


def redis_step(ctx: ClusterContext, node: Node) -> ConfigStep:
    """Both backends start Redis with --requirepass and --appendonly yes; this checks and converges it."""

    def pending() -> list[str]:
        client = ctx.redis()  # authenticates with the generated password: fails if it is not set
        try:
            current = {k: client.config_get(k).get(k) for k in WANTED}
        finally:
            client.close()
        return [f"set {k} {v}" for k, v in WANTED.items() if current.get(k) != v]

    def apply() -> None:
        client = ctx.redis()
        try:
            for key, value in WANTED.items():
                client.config_set(key, value)
        finally:
            client.close()

    return ConfigStep(node.name, "redis persistence", pending, apply, after=())
