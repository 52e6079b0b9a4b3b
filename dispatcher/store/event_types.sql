-- name: insert_event_type
-- Register an event type; NULL when the name is taken.
INSERT INTO event_types (name, description, enabled) VALUES ($1, $2, $3)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_event_type
-- One event type by name.
SELECT * FROM event_types WHERE name = $1;

-- name: list_event_types
-- Alphabetical, after a cursor (the last name seen).
SELECT * FROM event_types
WHERE ($1::text IS NULL OR name > $1)
ORDER BY name
LIMIT $2;

-- name: all_event_types
-- The whole catalogue, for export and for the in-memory registry.
SELECT * FROM event_types ORDER BY name;

-- name: update_event_type
-- Change description and/or enabled (NULL keeps the current value).
UPDATE event_types
SET description = coalesce($2, description),
    enabled = coalesce($3, enabled),
    updated_at = now()
WHERE name = $1
RETURNING *;

-- name: delete_event_type
-- Remove an event type from the catalogue.
DELETE FROM event_types WHERE name = $1 RETURNING name;

-- name: export_event_types
-- The catalogue as `dispatcher export` writes it.
SELECT name, description, enabled, created_at FROM event_types ORDER BY name;

-- name: import_event_type
-- `dispatcher import`: insert a type, or update it when description/enabled differ (only then
-- does updated_at move). No row when nothing changed; `inserted` tells an insert from an update.
INSERT INTO event_types AS t (name, description, enabled, created_at, updated_at)
VALUES ($1, $2, $3, coalesce($4, now()), now())
ON CONFLICT (name) DO UPDATE
SET description = EXCLUDED.description, enabled = EXCLUDED.enabled, updated_at = now()
WHERE (t.description, t.enabled) IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.enabled)
RETURNING t.name, (t.xmax = 0) AS inserted;
