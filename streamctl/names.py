"""Names of the objects streamctl creates, shared by `up`, `seed`, `verify` and the gateway."""

from __future__ import annotations

from datetime import date

# Roles streamctl creates -------------------------------------------------------------------------------
REPLICATION_USER = "streamctl_replicator"  # the replicas' subscription connections (analytics primary)
FDW_USER = "streamctl_fdw_reader"  # postgres_fdw's remote user on the analytics node it reads
GATEWAY_USER = "streamctl_gateway"  # the gateway's read-only PostgreSQL role (writes go to Redis/MongoDB)
MONGO_ROOT_USER = "streamctl_root"
MONGO_APP_USER = "streamctl_app"
HA_REPLICATION_USER = "streamctl_ha_replicator"  # Patroni's standbys streaming from their group's leader
HA_REWIND_USER = "streamctl_ha_rewind"  # Patroni's pg_rewind of a former leader
HA_REST_USER = "streamctl"  # Patroni's REST API (its unsafe calls: switchover, restart, ...)
HA_NAMESPACE = "/streamctl/"  # Patroni's keys in etcd: /streamctl/<cluster>/<citus group>/...

# PostgreSQL ------------------------------------------------------------------------------------------
SPARE_DATABASE = "streamctl_spare"  # an empty database new nodes are made with, renamed to theirs
SCHEMA_VERSION_TABLE = "streamctl_schema_version"  # per database: which sql/ files were applied
PUBLICATION = "streamctl_pub"  # on the analytics primary, for topology.analytics.tables
FDW_SERVER = "analytics_server"  # on the coordinator's metadata database
DISTRIBUTED_TABLES = ("content_metadata", "content_genres", "content_cast_crew", "trending_daily")
REFERENCE_TABLES = ("genres", "cast_crew")
DISTRIBUTION_COLUMN = "content_id"


SUBSCRIPTION_PREFIX = "streamctl_sub_"


def subscription_name(replica: str) -> str:
    """One subscription (and so one replication slot on the primary) per replica."""
    return SUBSCRIPTION_PREFIX + replica.replace("-", "_")


# On a replica restored from its primary's backup, until `up` subscribes it: a replication origin whose
# position is where the slot made for it on the primary starts (backup/replicas.py).
RESTORED_MARK = "streamctl_restored_with_primary"


# MongoDB ---------------------------------------------------------------------------------------------
REVIEWS_COLLECTION = "reviews"

# Redis -----------------------------------------------------------------------------------------------


def content_cache_key(content_id: str) -> str:
    """Cached content JSON (string, TTL redis.cache_ttl_seconds)."""
    return f"content:{content_id}"


def views_key(content_id: str) -> str:
    """Live view counter of one title (integer, no TTL)."""
    return f"views:{content_id}"


VIEWS_TOTAL_KEY = "views:total"  # every view the gateway counted, all titles (integer, no TTL): metrics


def trending_key(day: date | str) -> str:
    """One sorted set per day: member content_id, score views that day (TTL redis.trending_ttl_days)."""
    return f"trending:daily:{day if isinstance(day, str) else day.isoformat()}"
