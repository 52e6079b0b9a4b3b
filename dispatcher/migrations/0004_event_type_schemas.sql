-- The event catalogue: an optional JSON Schema (draft 2020-12) for each type's data, and
-- example data values. Stored as json, not jsonb, like events.data: kept as the author wrote
-- it (jsonb would reorder a schema's properties and cannot hold \u0000), and only ever read
-- whole. Existing types get no schema (not validated) and no examples.
ALTER TABLE event_types
    ADD COLUMN schema json,
    ADD COLUMN examples json NOT NULL DEFAULT '[]';
