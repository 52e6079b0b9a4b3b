-- name: insert_events
-- Group commit, step 1: many events in one statement; returns the ids that were new.
INSERT INTO events (id, type, data, occurred_at)
SELECT e.id, e.type, e.data::json, e.occurred_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
     AS e(id, type, data, occurred_at)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: delivery_counts
-- How many deliveries existing events have (the answer to a duplicate submission).
SELECT event_id, count(*) AS n FROM deliveries WHERE event_id = ANY($1::text[]) GROUP BY event_id;

-- name: get_event
-- One event with a summary of its deliveries.
SELECT e.id, e.type, e.data, e.occurred_at, e.created_at,
       coalesce((SELECT jsonb_object_agg(s.status, s.n)
                 FROM (SELECT status, count(*) AS n FROM deliveries d
                       WHERE d.event_id = e.id GROUP BY status) s), '{}') AS deliveries
FROM events e WHERE e.id = $1;

-- name: list_events
-- Newest first (by arrival), after a cursor, optionally of one type.
SELECT e.id, e.type, e.data, e.occurred_at, e.created_at,
       coalesce((SELECT jsonb_object_agg(s.status, s.n)
                 FROM (SELECT status, count(*) AS n FROM deliveries d
                       WHERE d.event_id = e.id GROUP BY status) s), '{}') AS deliveries
FROM events e
WHERE ($1::timestamptz IS NULL OR (e.created_at, e.id) < ($1, $2))
  AND ($3::text IS NULL OR e.type = $3)
ORDER BY e.created_at DESC, e.id DESC
LIMIT $4;
