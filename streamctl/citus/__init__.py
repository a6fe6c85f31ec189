"""Everything streamctl knows about Citus's catalog and shard operations: the SQL lives here only."""
