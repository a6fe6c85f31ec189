"""Reachability: every node of the topology answers a real query (PostgreSQL) or command (Redis, MongoDB)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from streamctl.backends.swarm.hosts import PINS
from streamctl.config.model import Engine, Node
from streamctl.context import ClusterContext
from streamctl.verify.result import CheckResult, Status, Verdict, describe, failed, guarded, passed

CHECK = "nodes.reachable"


def _probe(ctx: ClusterContext, node: Node) -> Verdict:
    """A failure to answer is this check's finding (failed), not an inability to run it."""
    try:
        if node.engine is Engine.POSTGRES:
            with ctx.pg_connect(node.name, node.database) as conn:
                row = conn.execute("SELECT current_setting('server_version'), "
                                   "(SELECT count(*) FROM pg_stat_activity)").fetchone()
            assert row is not None
            return passed(f"PostgreSQL {row[0]} ({row[1]} sessions)", version=row[0])
        if node.engine is Engine.REDIS:
            client = ctx.redis()
            try:
                client.ping()
                version = client.info("server").get("redis_version", "?")
            finally:
                client.close()
            return passed(f"Redis {version} answers PING", version=version)
        mongo = ctx.mongo(admin=True)
        try:
            mongo.admin.command("ping")
            version = mongo.server_info().get("version", "?")
        finally:
            mongo.close()
        return passed(f"MongoDB {version} answers ping", version=version)
    except Exception as exc:  # noqa: BLE001 - unreachable is the finding
        return failed(f"does not answer{_where(ctx, node)}: {describe(exc)}")


def _where(ctx: ClusterContext, node: Node) -> str:
    """On Swarm, the host the node is pinned to and every node pinned there (one lost host, many nodes)."""
    pins = ctx.store.read().get(PINS, {}) if ctx.store.exists() else {}
    host = (pins.get(node.name) or {}).get("id")
    if not host:
        return ""
    together = sorted(name for name, pin in pins.items() if pin.get("id") == host)
    return f" (Swarm host {pins[node.name].get('hostname')}, where {', '.join(together)} are pinned)"


def check_nodes(ctx: ClusterContext) -> list[CheckResult]:
    """One result per node, probed in parallel so one dead node does not serialise the others' timeouts."""
    nodes = ctx.topology.nodes()
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return list(pool.map(lambda n: guarded(CHECK, n.name, lambda: _probe(ctx, n)), nodes))


__all__ = ["check_nodes", "CHECK", "Status"]
