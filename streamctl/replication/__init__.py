"""Everything streamctl knows about logical replication: catalog queries (catalog.py) and when a replica
has caught up with the primary (catchup.py). `up`, `seed`, `verify` and the gateway call it."""
