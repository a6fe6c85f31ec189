"""Cross-field checks that types alone cannot express: unique names and ports, references that exist."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from streamctl.config import constraints
from streamctl.config.ha_checks import ha_endpoints, ha_errors
from streamctl.config.model import BACKED_UP_ROLES, ExternalSpec, Node, Role, Topology, node_backend
from streamctl.config.nodes import declared, owner, worker_index


def semantic_errors(t: Topology) -> list[str]:
    """Every cross-field error, concern by concern, in the order a reader meets them in the file."""
    errors: list[str] = []
    for concern in CONCERNS:
        errors += concern(t)
    return errors


def _name_errors(t: Topology) -> list[str]:
    errors: list[str] = []
    seen_names: dict[str, str] = {}
    for n in t.nodes():
        if n.name in seen_names:
            errors.append(f"{declared(t, n, 'name')}: name {n.name!r} is already used by {seen_names[n.name]}")
        else:
            seen_names[n.name] = owner(t, n, "name")
    return errors


def _port_errors(t: Topology) -> list[str]:
    errors: list[str] = []
    nodes = t.nodes()
    seen_ports: dict[tuple[str, int], str] = {}
    endpoints = [(declared(t, n, "port"), n.bind, n.port, owner(t, n, "port"),
                  f" ({n.name}'s)" if worker_index(n) is not None else "") for n in nodes]
    if t.gateway.enabled:
        endpoints.append(("gateway.port", t.gateway.host, t.gateway.port, "gateway", ""))
    if t.monitoring.prometheus:
        endpoints.append(("monitoring.port", t.monitoring.bind or t.bind, t.monitoring.port, "monitoring", ""))
    endpoints += ha_endpoints(t)
    external = {owner(t, n, "port") for n in nodes if n.is_external}
    for path, bind, port, holder, whose in endpoints:
        # Ports are compared regardless of address: on the Docker backend they all publish on the host.
        # An external node runs elsewhere: only another node at the same host and port clashes with it.
        key = (bind, port) if holder in external else ("*", port)
        if holder in external and bind in LOOPBACK and ("*", port) in seen_ports:
            key = ("*", port)
        if key in seen_ports:
            errors.append(f"{path}: port {port}{whose} is already used by {seen_ports[key]}")
        else:
            seen_ports[key] = holder
    return errors


def _citus_errors(t: Topology) -> list[str]:
    if t.citus and t.metadata.workers.count > 0:
        last = t.metadata.workers.port + t.metadata.workers.count - 1
        if last > 65535:
            return [f"metadata.workers.port: {t.metadata.workers.count} workers from port "
                    f"{t.metadata.workers.port} would need port {last} (above 65535)"]
    return []


def _analytics_errors(t: Topology) -> list[str]:
    errors: list[str] = []
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
    return errors


def _fdw_errors(t: Topology) -> list[str]:
    errors: list[str] = []
    a = t.analytics
    if t.fdw.enabled:
        analytics_nodes = {n.name for n in t.nodes() if n.role.value.startswith("analytics")}
        if not a.enabled:
            errors.append("fdw.enabled: the FDW needs the analytics role, which is disabled "
                          "(set fdw.enabled: false)")
        elif t.fdw.source not in analytics_nodes:
            known = ", ".join(sorted(analytics_nodes)) or "none"
            errors.append(f"fdw.source: {t.fdw.source!r} is not an analytics node (known: {known})")
        for i, table in enumerate(t.fdw.tables or ()):
            if table not in a.tables:
                errors.append(f"fdw.tables[{i}]: {table!r} is not one of analytics.tables")
    return errors


def _monitoring_errors(t: Topology) -> list[str]:
    errors: list[str] = []
    if t.monitoring.prometheus and t.backend == "swarm":
        errors.append("monitoring.prometheus: the monitoring node runs on the local and Docker backends, not on "
                      "Swarm yet (a Swarm service cannot reach the gateway on the manager's loopback); "
                      "set monitoring.prometheus: false")
    if t.monitoring.prometheus and not t.gateway.enabled:
        errors.append("monitoring.prometheus: Prometheus scrapes the gateway, which is disabled "
                      "(gateway.enabled: false)")
    return errors


def _backup_errors(t: Topology) -> list[str]:
    if not t.backup_on or t.backup is None:
        return []
    kinds = {node_backend(t, n) for n in t.nodes() if n.role in BACKED_UP_ROLES}
    if "external" in kinds or len(kinds - {"auto"}) > 1:
        return [f"backup: backups are implemented for the local, Docker and Swarm backends (every backed-up node "
                f"on one of them), and this topology runs them on {', '.join(sorted(kinds))} (remove the "
                "section, or run them on one backend)"]
    if "swarm" in kinds and t.backup.repository.s3 is not None:
        return ["backup.repository: on Swarm the repository is a directory on the manager (path: DIR); S3 "
                "repositories are not implemented there yet"]
    if "swarm" in kinds and not t.tls.enabled:
        return ["backup: on Swarm pgBackRest's hosts prove themselves with the cluster CA's certificates, so "
                "backups need tls (remove `tls: false`, or the section)"]
    return []


def _swarm_errors(t: Topology) -> list[str]:
    return constraints.syntax_errors(t) + (swarm_bind_errors(t) if t.backend == "swarm" else [])


def swarm_bind_errors(t: Topology) -> list[str]:
    """Swarm publishes a port on every interface of the host running the task: it cannot bind 127.0.0.1,
    so the topology must say 0.0.0.0 to accept that (checked again when `--backend swarm` overrides)."""
    why = ("Swarm publishes ports on every interface of the host running the task, so it cannot bind {bind}; "
           "set bind: 0.0.0.0 to accept that, and firewall the hosts (see README, Swarm backend)")
    paths = {("bind" if n.bind == t.bind else f"{n.yaml_path}.bind", n.bind) for n in t.nodes()}
    return [f"{path}: {why.format(bind=bind)}" for path, bind in sorted(paths) if bind not in ("0.0.0.0", "::")]


def is_ip(text: str) -> bool:
    """An IP address or network (CIDR): what a pg_hba address field takes without a DNS lookup."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def hba_address_errors(t: Topology) -> list[str]:
    """Addresses streamctl writes into a managed node's pg_hba.conf (a replica's on the primary, the FDW
    coordinator's on its source) must be IP addresses: a host name there makes the file invalid, and the
    server would not start again. Docker and Swarm give their containers' IPs; the others come from here."""
    a, nodes = t.analytics, t.nodes()
    by_name = {n.name: n for n in nodes}
    primary = by_name.get(a.primary.name) if a.enabled and a.primary else None
    admitted: list[Node] = []
    if primary is not None and not primary.is_external:
        admitted += [n for n in nodes if n.role is Role.ANALYTICS_REPLICA]
    source = by_name.get(t.fdw.source) if t.fdw.enabled else None
    if source is not None and not source.is_external:
        admitted += [n for n in nodes if n.role is Role.COORDINATOR]
    errors = []
    for n in admitted:
        if n.external is not None:
            field = "citus_host" if n.external.citus_host else "host"
            address = n.external.citus_host or n.host
            own = _external_specs(t).get(n.yaml_path)  # the node's own `external`, else the topology's
            path = f"{n.yaml_path}.external.{field}" if own is not None and getattr(own, field) else \
                f"external.{field}"
        elif node_backend(t, n) in ("local", "auto"):
            address = "127.0.0.1" if n.host == "localhost" else n.host
            path = "bind" if n.bind == t.bind else f"{n.yaml_path}.bind"
        else:
            continue
        if not is_ip(address):
            errors.append(f"{path}: {address!r} is not an IP address; {n.name}'s connections are admitted by "
                          "address in pg_hba.conf, which needs an IP (a host name there would stop the server "
                          "from starting)")
    return errors


def _external_specs(t: Topology) -> dict[str, ExternalSpec]:
    specs: dict[str, ExternalSpec | None] = {"metadata.coordinator": t.metadata.coordinator.external,
                                "analytics.primary": t.analytics.primary.external if t.analytics.primary else None}
    specs.update({f"analytics.replicas[{i}]": r.external for i, r in enumerate(t.analytics.replicas)})
    return {p: s for p, s in specs.items() if s is not None}


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


# the order a reader meets these in the file
CONCERNS: tuple[Callable[[Topology], list[str]], ...] = (
    _name_errors, _port_errors, _external_errors, _citus_errors, _analytics_errors, _fdw_errors,
    hba_address_errors, _monitoring_errors, _backup_errors, ha_errors, _swarm_errors)
