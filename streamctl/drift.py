"""How external nodes differ from what the topology says they are: reachable, PostgreSQL version, Citus
present and its worker list. Reads only; the configuration steps' own checks report the rest."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg

from streamctl.citus import catalog
from streamctl.citus.nodes import worker_address
from streamctl.config.model import Node, Role
from streamctl.context import ClusterContext
from streamctl.errors import BackendError, ExitCode, PreflightError, StreamctlError


class DriftError(StreamctlError, exit_code=ExitCode.CHECK_FAILED):
    """`up` found external nodes that differ from the topology and was not asked to change them."""


class NotCitusError(PreflightError):
    """The topology says Citus, but the external node cannot run it."""


def _major(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    return int(row[0]) if row else 0


def _check_citus_capable(conn: psycopg.Connection[Any], node: Node) -> None:
    available, preloaded = catalog.loadable(conn)
    if not (available and preloaded):
        why = "the citus extension is not installed" if not available else \
            "citus is not in shared_preload_libraries"
        raise NotCitusError(f"{node.name} ({node.host}:{node.port}) is not a Citus node: {why}",
                            hint=f"the topology says Citus ({node.yaml_path}); point it at a Citus server "
                                 "or set metadata.citus.enabled: false")


def external_differences(ctx: ClusterContext) -> list[str]:
    """Every difference between the external PostgreSQL nodes and the topology (raises when a node cannot
    be what the topology says at all, e.g. not Citus)."""
    t = ctx.topology
    out: list[str] = []
    majors: dict[str, int] = {}
    for node in t.nodes():
        if not node.is_external or not node.is_postgres:
            continue
        assert node.external is not None
        try:
            conn = ctx.pg_connect(node.name)
        except BackendError as exc:
            if "does not exist" not in exc.message:
                raise
            out.append(f"{node.name}: database {node.database} does not exist")
            conn = ctx.pg_connect(node.name, "postgres")
        with conn:
            majors[node.name] = major = _major(conn)
            wanted = node.external.server_version
            if wanted is not None and wanted != major:
                out.append(f"{node.name}: PostgreSQL {major}, the topology says {wanted}")
            if t.citus and node.role in (Role.COORDINATOR, Role.WORKER):
                _check_citus_capable(conn, node)
            if t.citus and node.role is Role.COORDINATOR:
                out += _unknown_workers(ctx, conn, node)
    citus_majors = {n: v for n, v in majors.items() if t.citus and
                    t.node(n) is not None and t.node(n).role in (Role.COORDINATOR, Role.WORKER)}  # type: ignore[union-attr]
    if len(set(citus_majors.values())) > 1:
        out.append("Citus nodes run different PostgreSQL major versions: " +
                   ", ".join(f"{n} {v}" for n, v in sorted(citus_majors.items())))
    return out


def _unknown_workers(ctx: ClusterContext, conn: psycopg.Connection[Any], node: Node) -> list[str]:
    """Workers Citus knows that the topology does not (missing ones are the worker step's to report)."""
    if not catalog.extension_created(conn):
        return []
    expected = set()
    for w in ctx.topology.nodes_by_role(Role.WORKER):
        with contextlib.suppress(StreamctlError):  # a provisioned worker not up yet: the worker step reports it
            expected.add(worker_address(ctx, w))
    return [f"{node.name}: Citus has worker {h}:{p}, which is not in the topology (map it with "
            "metadata.workers.nodes[].citus_host/citus_port, or remove it from Citus)"
            for (h, p) in catalog.primary_workers(conn) if (h, p) not in expected]
