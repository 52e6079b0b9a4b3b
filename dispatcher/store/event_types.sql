-- name: insert_event_type
-- Register an event type; NULL when the name is taken.
INSERT INTO event_types (name, description, enabled, schema, examples)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_event_type_for_update
-- One event type, locked until the end of the transaction: a change of schema or examples is
-- checked against the other one as stored, and nothing may change it in between.
SELECT * FROM event_types WHERE name = $1 FOR UPDATE;

-- name: get_event_type
-- One event type by name; with $2 only if it is enabled (what a tenant may see).
SELECT * FROM event_types WHERE name = $1 AND (NOT $2::boolean OR enabled);

-- name: list_event_types
-- Alphabetical, after a cursor (the last name seen). At most $2 rows, and only while their
-- schemas and examples add up to $3 bytes (the first row always); `fetched` is how many
-- candidates there were (see list_events). With $4 only enabled types (what a tenant may see).
WITH candidates AS (
    SELECT name, octet_length(coalesce(schema::text, '')) + octet_length(coalesce(examples::text, ''))
                 + octet_length(coalesce(description, '')) AS size
    FROM event_types
    WHERE ($1::text IS NULL OR name > $1) AND (NOT $4::boolean OR enabled)
    ORDER BY name
    LIMIT $2
), measured AS (
    SELECT name, sum(size) OVER (ORDER BY name ROWS UNBOUNDED PRECEDING) AS running,
           row_number() OVER (ORDER BY name) AS n, count(*) OVER () AS fetched
    FROM candidates
)
SELECT t.*, m.fetched
FROM measured m JOIN event_types t ON t.name = m.name
WHERE m.n = 1 OR m.running <= $3
ORDER BY m.name;

-- name: all_event_types
-- The whole catalogue, for export and for the in-memory registry.
SELECT * FROM event_types ORDER BY name;

-- name: update_event_type
-- Change description and/or enabled (NULL keeps the current value); schema and examples are
-- set as given when $4 / $6 say so (a NULL schema removes it).
UPDATE event_types
SET description = coalesce($2, description),
    enabled = coalesce($3, enabled),
    schema = CASE WHEN $4::boolean THEN $5::json ELSE schema END,
    examples = CASE WHEN $6::boolean THEN $7::json ELSE examples END,
    updated_at = now()
WHERE name = $1
RETURNING *;

-- name: registry_event_types
-- What every instance keeps in memory: which types are disabled and which have a schema.
SELECT name, enabled, schema FROM event_types WHERE NOT enabled OR schema IS NOT NULL;

-- name: catalogue_event_types
-- GET /v1/catalogue: the enabled types, alphabetically.
SELECT name, description, schema, examples, updated_at FROM event_types
WHERE enabled
ORDER BY name;

-- name: delete_event_type
-- Remove an event type from the catalogue.
DELETE FROM event_types WHERE name = $1 RETURNING name;

-- name: export_event_types
-- The catalogue as `dispatcher export` writes it.
SELECT name, description, enabled, schema, examples, created_at FROM event_types ORDER BY name;

-- name: import_event_type
-- `dispatcher import`: insert a type, or update it when anything imported differs (only then
-- does updated_at move). A NULL enabled ($3) keeps the stored flag (true for a new type).
-- json has no equality: schema and examples compare as text, which the codec writes the same
-- way for the same value (and a reordered schema is a change). No row when nothing changed;
-- `inserted` tells an insert from an update.
INSERT INTO event_types AS t (name, description, enabled, schema, examples, created_at, updated_at)
VALUES ($1, $2, coalesce($3, true), $5, $6, coalesce($4, now()), now())
ON CONFLICT (name) DO UPDATE
SET description = EXCLUDED.description,
    enabled = coalesce($3, t.enabled),
    schema = EXCLUDED.schema,
    examples = EXCLUDED.examples,
    updated_at = now()
WHERE (t.description, t.enabled, t.schema::text, t.examples::text)
    IS DISTINCT FROM
    (EXCLUDED.description, coalesce($3, t.enabled), EXCLUDED.schema::text, EXCLUDED.examples::text)
RETURNING t.name, (t.xmax = 0) AS inserted;

-- name: names_with_examples
-- The types a webhook page can send an example of.
SELECT name FROM event_types WHERE examples::text <> '[]' ORDER BY name LIMIT 500;
