"""`down`: every node of the cluster stopped (data kept), or with volumes removed with its data and the
state. External nodes are never touched. Emits events, never prints."""

from __future__ import annotations

import shutil

from streamctl import parallel
from streamctl.backends.base import Backend
from streamctl.backends.external import refuse_down
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.events import Emit, Event
from streamctl.retire import backend_running, drop_replica_slot, release_replica
from streamctl.retire import remove_orphans as remove_orphans_of
from streamctl.services import monitoring


def take_down(ctx: ClusterContext, backend: Backend, emit: Emit, volumes: bool = False,
              skip_external: bool = False, remove_orphans: bool = False) -> list[str]:
    """Stop every node (keeping data), or with volumes=True remove nodes, data and state; the names of
    the nodes stopped or removed. External nodes are refused (exit 10) unless skip_external takes down
    only the others. Nodes the state knows and the topology no longer has (orphans) are stopped too, so no
    server of the cluster is left running; remove_orphans removes them first, with care
    (retire.remove_orphans)."""
    done: list[str] = []
    everything = ctx.topology.nodes()
    external = [n.name for n in everything if n.is_external]
    if external and not skip_external:
        raise refuse_down(external)
    nodes = [n for n in everything if not n.is_external]
    for node in nodes:  # before anything is stopped: raises when another state directory owns a node
        backend.observe(node)
    if remove_orphans and not volumes:  # with volumes everything goes: no shard needs to move first
        done += remove_orphans_of(ctx, backend, emit)
    nodes += [o for o in ctx.orphans() if backend_running(backend, o) is not None]
    primary = ctx.first(Role.ANALYTICS_PRIMARY)
    if volumes and primary is not None and primary.is_external:
        # The primary outlives this cluster's replicas: their slots must not stay behind on it.
        for replica in [n for n in nodes if n.role is Role.ANALYTICS_REPLICA]:
            release_replica(ctx, replica, emit)

    def one(node: Node) -> None:
        emit(Event("begin", node.name, "remove" if volumes else "stop"))
        if volumes:
            backend.remove(node, volumes=True)
        else:
            backend.stop(node)
        emit(Event("done", node.name, "remove" if volumes else "stop"))
        done.append(node.name)

    for outcome in parallel.each(nodes, one):
        outcome.get()  # the first failure, once every node has had its turn
    if volumes and primary is not None and primary.is_external:
        for replica in [n for n in nodes if n.role is Role.ANALYTICS_REPLICA]:
            drop_replica_slot(ctx, replica, emit)
    if ctx.topology.monitoring.prometheus:
        monitoring.stop(ctx, backend, volumes)
    backend.teardown(volumes)
    if volumes and ctx.store.root.exists():
        shutil.rmtree(ctx.store.root)
    return done
