"""Cross-field checks that types alone cannot express: unique names and ports, references that exist."""

from __future__ import annotations

from streamctl.config import constraints
from streamctl.config.model import BACKED_UP_ROLES, Topology, node_backend


def semantic_errors(t: Topology) -> list[str]:
    errors: list[str] = []
    nodes = t.nodes()

    seen_names: dict[str, str] = {}
    for n in nodes:
        if n.name in seen_names:
            errors.append(f"{n.yaml_path}.name: name {n.name!r} is already used by {seen_names[n.name]}")
        else:
            seen_names[n.name] = n.yaml_path

    seen_ports: dict[tuple[str, int], str] = {}
    endpoints = [(f"{n.yaml_path}.port", n.bind, n.port, n.yaml_path) for n in nodes]
    if t.gateway.enabled:
        endpoints.append(("gateway.port", t.gateway.host, t.gateway.port, "gateway"))
    external = {n.yaml_path for n in nodes if n.is_external}
    for path, bind, port, owner in endpoints:
        # Ports are compared regardless of address: on the Docker backend they all publish on the host.
        # An external node runs elsewhere: only another node at the same host and port clashes with it.
        key = (bind, port) if owner in external else ("*", port)
        if owner in external and bind in LOOPBACK and ("*", port) in seen_ports:
            key = ("*", port)
        if key in seen_ports:
            errors.append(f"{path}: port {port} is already used by {seen_ports[key]}")
        else:
            seen_ports[key] = owner

    errors += _external_errors(t)
    if t.citus and t.metadata.workers.count > 0:
        last = t.metadata.workers.port + t.metadata.workers.count - 1
        if last > 65535:
            errors.append(f"metadata.workers.port: {t.metadata.workers.count} workers from port "
                          f"{t.metadata.workers.port} would need port {last} (above 65535)")

    a = t.analytics
    if a.enabled:
        if a.primary is None and a.replicas:
            errors.append("analytics.replicas: replicas need a primary, but analytics.primary is not set")
        elif a.primary is None:
            errors.append("analytics.primary: analytics is enabled but has no primary "
                          "(set one, or analytics.enabled: false)")
        if not a.tables:
            errors.append("analytics.tables: at least one table must be published")
        for i, table in enumerate(a.tables):
            if table not in KNOWN_ANALYTICS_TABLES:
                errors.append(f"analytics.tables[{i}]: unknown table {table!r} "
                              f"(known: {', '.join(sorted(KNOWN_ANALYTICS_TABLES))})")
        if len(set(a.tables)) != len(a.tables):
            errors.append("analytics.tables: a table is listed twice")

    if t.fdw.enabled:
        analytics_nodes = {n.name for n in nodes if n.role.value.startswith("analytics")}
        if not a.enabled:
            errors.append("fdw.enabled: the FDW needs the analytics role, which is disabled "
                          "(set fdw.enabled: false)")
        elif t.fdw.source not in analytics_nodes:
            known = ", ".join(sorted(analytics_nodes)) or "none"
            errors.append(f"fdw.source: {t.fdw.source!r} is not an analytics node (known: {known})")
        for i, table in enumerate(t.fdw.tables or ()):
            if table not in a.tables:
                errors.append(f"fdw.tables[{i}]: {table!r} is not one of analytics.tables")

    if t.backup_on:
        others = sorted({node_backend(t, n) for n in nodes if n.role in BACKED_UP_ROLES} - {"local", "auto"})
        if others:
            errors.append(f"backup: backups are implemented for the local backend only, and this topology "
                          f"runs nodes on {', '.join(others)} (remove the section, or use backend: local)")
    errors += constraints.syntax_errors(t)
    if t.backend == "swarm":
        errors += swarm_bind_errors(t)
    return errors


def swarm_bind_errors(t: Topology) -> list[str]:
    """Swarm publishes a port on every interface of the host running the task: it cannot bind 127.0.0.1,
    so the topology must say 0.0.0.0 to accept that (checked again when `--backend swarm` overrides)."""
    why = ("Swarm publishes ports on every interface of the host running the task, so it cannot bind {bind}; "
           "set bind: 0.0.0.0 to accept that, and firewall the hosts (see README, Swarm backend)")
    paths = {("bind" if n.bind == t.bind else f"{n.yaml_path}.bind", n.bind) for n in t.nodes()}
    return [f"{path}: {why.format(bind=bind)}" for path, bind in sorted(paths) if bind not in ("0.0.0.0", "::")]


def _external_errors(t: Topology) -> list[str]:
    """`port` belongs to workers.nodes[] only; an external node needs somewhere to connect to."""
    errors = []
    specs = {"external": t.external, "metadata.coordinator.external": t.metadata.coordinator.external,
             "metadata.workers.external": t.metadata.workers.external,
             "analytics.primary.external": t.analytics.primary.external if t.analytics.primary else None,
             "mongo.external": t.mongo.external, "redis.external": t.redis.external}
    specs.update({f"analytics.replicas[{i}].external": r.external for i, r in enumerate(t.analytics.replicas)})
    for path, spec in specs.items():
        if spec is not None and spec.port is not None:
            errors.append(f"{path}.port: set the node's own port instead (external.port is only for "
                          "metadata.workers.nodes[])")
    return errors


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
KNOWN_ANALYTICS_TABLES = frozenset({"users", "user_watch_history"})
