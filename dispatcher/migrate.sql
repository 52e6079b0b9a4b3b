-- name: table_exists
-- Whether the migrations table exists (an empty database has none).
SELECT to_regclass('dispatcher_migrations') IS NOT NULL;

-- name: current_version
-- The highest applied version.
SELECT coalesce(max(version), 0) FROM dispatcher_migrations;

-- name: lock
-- One migrating process at a time: the others wait here, then find nothing to do.
SELECT pg_advisory_lock($1);

-- name: unlock
SELECT pg_advisory_unlock($1);

-- name: create_table
CREATE TABLE IF NOT EXISTS dispatcher_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: record
-- Migration $1 ($2) is applied (in the migration's own transaction).
INSERT INTO dispatcher_migrations (version, name) VALUES ($1, $2);
