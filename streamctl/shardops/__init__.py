"""Shard operations for ops people: plan a rebalance, run it with progress, move one shard group,
find and isolate hot titles; every change is checked (row counts and checksums) before and after."""
