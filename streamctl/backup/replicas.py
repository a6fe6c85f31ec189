"""The analytics replicas of a restored cluster, restored from their primary's backup instead of copied
table by table by logical replication (which made `up` copy every table again after a restore).

Each replica recovers from the analytics primary's backup to the same restore point, in parallel with the
other nodes and isolated like them, so it holds the primary's rows of that moment, and is reconciled into a
replica (no publication, no slots, no roles only a primary has). Then, while the restored primary still
accepts no TCP connection (nothing can write to it), each replica's subscription slot is made on it, so the
slot starts at a moment both copies share, and the replica is marked with that position. `up` subscribes a
marked replica through its slot without the initial copy (services/replication.py), only while the slot
waits unused on the primary at the marked position: any other replica gets the full copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from streamctl.backup import recover
from streamctl.config.model import Role
from streamctl.names import FDW_USER, REPLICATION_USER, subscription_name
from streamctl.replication import catalog

if TYPE_CHECKING:
    from streamctl.backup.catalog import BackupSet, NodeBackup
    from streamctl.backup.pgbackrest import PgBackRest
    from streamctl.context import ClusterContext


def from_primary(tctx: ClusterContext, tool: PgBackRest, chosen: BackupSet,
                 ) -> dict[str, tuple[recover.RestoredNode, NodeBackup]]:
    """Each replica the topology runs here, with the analytics primary's backup it is restored from (none
    when the set has no analytics primary)."""
    primary = tctx.first(Role.ANALYTICS_PRIMARY)
    source = next((b for b in chosen.nodes if primary is not None and b.node == primary.name), None)
    if source is None:
        return {}
    return {r.name: (recover.RestoredNode(r, tool.place.restore_site(r), tctx.topology.pg_user), source)
            for r in tctx.topology.nodes_by_role(Role.ANALYTICS_REPLICA) if not r.is_external}


def link(restored: dict[str, recover.RestoredNode], replicas: list[str]) -> None:
    """On the restored primary, still isolated: each replica's subscription slot, named as `up` expects;
    on the replica, the mark of where that slot starts."""
    primary = next((rn for rn in restored.values() if rn.node.role is Role.ANALYTICS_PRIMARY), None)
    if primary is None or not replicas:
        return
    with primary.connect() as conn:
        for name in replicas:
            start = catalog.create_slot(conn, subscription_name(name))
            with restored[name].connect() as replica:
                catalog.mark_restored(replica, start)


def make_replica(rn: recover.RestoredNode, tctx: ClusterContext) -> None:
    """What came with the primary's files and a replica must not have: the publication, any slot, and the
    roles only the primary's steps make (the replication role; the FDW's reader unless it reads this
    replica). Recovery and archiving settings are cleared with every restored node's (recover.make_own)."""
    t = tctx.topology
    roles = [REPLICATION_USER] + ([] if t.fdw.enabled and t.fdw.source == rn.node.name else [FDW_USER])
    with rn.connect() as conn:
        catalog.drop_publication(conn)
        catalog.drop_every_slot(conn)
        databases = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()]
    for database in databases:  # a role's grants live in each database (and its shared ones in any)
        with rn.connect(database) as conn:
            present = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                                  (roles,)).fetchall()]
            for role in present:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with rn.connect() as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
