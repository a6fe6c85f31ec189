"""Service adapters: what `up` configures inside the nodes once they run, as ordered ConfigSteps.

Each entry of ADAPTERS is one concern (contract: services/base.py); their order is the order `up` runs
them in, and each returns no steps when the topology turns its concern off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamctl.services import (
    access,
    backup,
    fdw,
    gateway_role,
    ha,
    metadata,
    mongo,
    monitoring,
    permanent_slots,
    postgres,
    redis,
    replication,
)
from streamctl.services.base import Adapter, ConfigStep

if TYPE_CHECKING:
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext

ADAPTERS: tuple[Adapter, ...] = (
    postgres.database_steps,  # every PostgreSQL node: its database
    ha.steps,  # Patroni's dynamic configuration under ha: failsafe_mode and check_timeline on, per group
    metadata.steps,  # Citus layer (or its null twin) and the catalogue schema around distribution
    replication.primary_steps,  # analytics schema, replication role and publication on the primary
    access.steps,  # pg_hba on every PostgreSQL node: who may connect from where (TLS only when on)
    replication.replica_steps,  # per replica: schema, then its subscription (waits for the catch-up)
    permanent_slots.steps,  # under HA: the replicas' slots kept by Patroni on the analytics standbys
    fdw.steps,  # postgres_fdw on the coordinator, reading the analytics tables
    gateway_role.steps,  # the gateway's read-only role on every node it reads
    mongo.steps,  # users, the reviews collection and its indexes
    redis.steps,  # password and persistence
    monitoring.steps,  # Prometheus scraping the gateway, with alert rules (monitoring.prometheus)
    backup.steps,  # WAL archiving: each PostgreSQL group's stanza, then archive_command (backup: only)
)


def configuration_steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Every configuration step of the platform, in the order they must run."""
    return [step for adapter in ADAPTERS for step in adapter(ctx, backend)]
