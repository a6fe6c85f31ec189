"""The checks of `ha:`: the ports it adds, and what Patroni and this build of streamctl can run."""

from __future__ import annotations

from streamctl.config.members import etcd_members, ha_groups
from streamctl.config.model import Topology, node_backend
from streamctl.config.nodes import declared, spec_of


def ha_endpoints(t: Topology) -> list[tuple[str, str, int, str, str]]:
    """The ports high availability adds: standbys', every member's REST API, etcd's."""
    out = []
    for group in ha_groups(t):
        for i, m in enumerate(group.members):
            if i:
                out.append(("ha.port", m.node.bind, m.port, f"{m.name} ({m.port_path})", f" ({m.name}'s)"))
            out.append(("ha.rest_port", m.node.bind, m.rest_port, f"{m.name}'s REST API ({m.rest_path})",
                        f" ({m.name}'s REST API)"))
    for i, e in enumerate(etcd_members(t)):
        plus = f" + {i}" if i else ""
        out += [("ha.etcd.port", e.host, e.port, f"{e.name} (ha.etcd.port{plus})", f" ({e.name}'s)"),
                ("ha.etcd.peer_port", e.host, e.peer_port, f"{e.name} (ha.etcd.peer_port{plus})", f" ({e.name}'s)")]
    return out


def ha_errors(t: Topology) -> list[str]:
    """What `ha:` cannot run: a node streamctl does not provision, a synchronous group without a standby,
    Patroni's timing out of its bounds, ports past 65535; and, for now, a plain PostgreSQL coordinator under HA
    (the Citus groups and the analytics primary run under it, on the local, Docker and Swarm backends) and
    backups with a group on Swarm."""
    if not t.ha_on:
        return []
    ha = t.ha
    assert ha is not None
    errors = []
    groups = ha_groups(t)
    if not t.citus and not groups:
        errors.append("ha: without Citus (metadata.citus.enabled is false) high availability covers only the "
                      "analytics primary, and ha.analytics.standbys is 0 (give it standbys; a plain PostgreSQL "
                      "coordinator under HA is not built yet)")
    if not t.citus:
        errors += [f"ha.{kind}.standbys: a plain PostgreSQL coordinator under HA is not built yet (Citus is off); "
                   "remove it" for kind in ("coordinator", "workers") if getattr(ha, kind).standbys]
    external: dict[str, list[str]] = {}
    for g in (g for g in groups if g.node.is_external):
        path = declared(t, g.node, "backend") if spec_of(t, g.node)[0] == "external" else "backend"
        external.setdefault(path, []).append(g.node.name)
    errors += [f"{path}: {', '.join(names)} {'is' if len(names) == 1 else 'are'} external, and ha runs only the "
               "nodes streamctl provisions (remove the ha section, or make them provisioned)"
               for path, names in external.items()]
    if ha.synchronous != "off":
        for path in dict.fromkeys(g.standbys_path for g in groups if g.standbys == 0):
            errors.append(f"ha.synchronous: {ha.synchronous!r} needs a standby to wait for, but {path} is 0 "
                          "(set a standby, or synchronous: off)")
    if ha.ttl < 20:
        errors.append(f"ha.ttl: {ha.ttl} is below Patroni's minimum of 20 seconds (Patroni would raise it "
                      "silently)")
    if ha.loop_wait > ha.ttl - 2:
        errors.append(f"ha.loop_wait: {ha.loop_wait} must be at most ha.ttl - 2 ({ha.ttl - 2}): Patroni needs "
                      "ttl >= loop_wait + 2 x retry_timeout, and retry_timeout is at least 1 second")
    for key, ports in (("ha.port", [m.port for g in groups for m in g.members[1:]]),
                       ("ha.rest_port", [m.rest_port for g in groups for m in g.members]),
                       ("ha.etcd.port", [e.port for e in etcd_members(t)]),
                       ("ha.etcd.peer_port", [e.peer_port for e in etcd_members(t)])):
        if ports and max(ports) > 65535:
            errors.append(f"{key}: {len(ports)} ports from {min(ports)} would need port {max(ports)} (above 65535)")
    on_swarm = [g.node.name for g in groups if not g.node.is_external and node_backend(t, g.node) == "swarm"]
    if t.backup_on and on_swarm:
        errors.append(f"backup: backups with ha run on the local and Docker backends only for now, and this "
                      f"topology runs {', '.join(on_swarm)} under ha on swarm (remove one of the two sections, or "
                      "set backend: docker or local)")
    names = {n.name for n in t.nodes()}
    for m in (m for g in groups for m in g.members[1:] if m.name in names):
        errors.append(f"ha: the standby {m.name} of {m.node.name} has the name of another node (rename that node)")
    return errors
