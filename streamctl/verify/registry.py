"""The checks `streamctl verify` knows, in the order they run and are reported, and how to select them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamctl.config.model import Topology
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError
from streamctl.verify import backup, citus, fdw, ha, nodes, replication, stores, tls
from streamctl.verify.result import CheckResult


@dataclass(frozen=True)
class CheckSpec:
    """A named check: what it proves, how to run it, and when its role is disabled (skip reason)."""

    name: str
    summary: str
    run: Callable[[ClusterContext], list[CheckResult]]
    skip: Callable[[Topology], str | None] = lambda _t: None
    heavy: bool = False  # reads whole tables: started first, so the checks' pool does not hold it back

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(nodes.CHECK, "every node answers a real query or ping", nodes.check_nodes),
    CheckSpec(tls.REQUIRED, "every node refuses plain text; clients verify it", tls.check_required, tls.skip_reason),
    CheckSpec(tls.EXPIRY, "no certificate expires within 30 days", tls.check_expiry, tls.skip_reason),
    CheckSpec(citus.WORKERS, "every worker registered and active", citus.check_workers, citus.skip_reason),
    CheckSpec(citus.PLACEMENTS, "every shard placement on an active node", citus.check_placements,
              citus.skip_reason),
    CheckSpec(citus.DISTRIBUTION, "tables distributed/replicated as declared", citus.check_distribution,
              citus.skip_reason),
    CheckSpec(citus.SKEW, "largest shard / mean shard within verify.max_skew", citus.check_skew,
              citus.skip_reason, heavy=True),
    CheckSpec(ha.GROUPS, "each HA group led, its standbys streaming, pg_dist_node naming a Citus group's leader",
              ha.check_groups, ha.skip_reason),
    CheckSpec(replication.SUBSCRIPTION, "subscription enabled, every table in state r",
              replication.check_subscription, replication.skip_reason),
    CheckSpec(replication.LAG, "replication lag under verify.max_lag_bytes / max_lag_seconds",
              replication.check_lag, replication.skip_reason),
    CheckSpec(replication.SLOTS, "no stray or lagging subscription slot; WAL each holds; WAL bound set",
              replication.check_slots, replication.slots_skip_reason),
    CheckSpec(replication.DATA, "row counts and chunked checksums equal to the primary's",
              replication.check_data, replication.skip_reason, heavy=True),
    CheckSpec(fdw.COUNTS, "foreign tables count what their source counts", fdw.check_counts, fdw.skip_reason,
              heavy=True),
    CheckSpec(fdw.JOIN, "the watch-history join with titles runs", fdw.check_join, fdw.skip_reason),
    CheckSpec(stores.MONGO, "reviews collection with validator and indexes", stores.check_mongo,
              stores.mongo_skip),
    CheckSpec(stores.REDIS, "trending keys present once seeded", stores.check_redis, stores.redis_skip),
    CheckSpec(backup.ARCHIVING, "WAL archiving works: no failure, no segment left waiting",
              backup.check_archiving, backup.skip_reason),
)


def select(only: Sequence[str] | None) -> list[CheckSpec]:
    """Checks named exactly or by family (`citus` selects every citus.* check); unknown names refused."""
    if not only:
        return list(CHECKS)
    wanted = {w.strip() for item in only for w in item.split(",") if w.strip()}
    known = {c.name for c in CHECKS} | {c.family for c in CHECKS}
    unknown = sorted(wanted - known)
    if unknown:
        raise NotFoundError(f"unknown check {', '.join(unknown)}",
                            hint="known: " + ", ".join(sorted(known)))
    return [c for c in CHECKS if c.name in wanted or c.family in wanted]
