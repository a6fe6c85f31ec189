"""Everything streamctl knows about Citus: catalog queries (catalog.py), nodes and registration (nodes.py),
the layer `up` applies (layer.py), shard moves (rebalance.py: Citus's plan, drain, unregister; jobs.py:
the background job that moves them) and how shards are spread (shards.py)."""
