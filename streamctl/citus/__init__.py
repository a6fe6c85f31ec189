"""Everything streamctl knows about Citus: catalog queries (catalog.py), nodes and registration (nodes.py),
the layer `up` applies (layer.py), shard moves (rebalance.py) and how shards are spread (shards.py)."""
