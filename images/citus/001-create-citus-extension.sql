-- Run once by the entrypoint at init, in POSTGRES_DB (as the official citusdata/citus image does).
CREATE EXTENSION IF NOT EXISTS citus;
