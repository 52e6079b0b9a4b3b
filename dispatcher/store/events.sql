-- name: insert_events
-- The group commit, in one statement (so one round trip, no BEGIN/COMMIT): many events, and
-- the fan-out rows of those that were new. Returns the ids that were new; a duplicate's
-- deliveries are dropped with it. Leased rows are handed to this instance's engine in-process;
-- the others wait for a scheduler to claim them. $1 owner, $2 lease seconds, $3 created_at;
-- then one array per column of store.events.EventRow ($4-$9) and DeliveryRow ($10-$15).
WITH new_events AS (
    INSERT INTO events (id, type, data, occurred_at, sent_to, tenant_id)
    SELECT e.id, e.type, e.data::json, e.occurred_at, e.sent_to, e.tenant_id
    FROM unnest($4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[])
         AS e(id, type, data, occurred_at, sent_to, tenant_id)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), new_deliveries AS (
    INSERT INTO deliveries (id, event_id, webhook_id, event_type, created_at, next_attempt_at,
                            due_at, lease_owner, lease_until, tenant_id)
    SELECT d.id, d.event_id, d.webhook_id, d.event_type, $3, now(),
           CASE WHEN d.leased THEN NULL ELSE now() END,
           CASE WHEN d.leased THEN $1 END,
           CASE WHEN d.leased THEN now() + make_interval(secs => $2) END,
           d.tenant_id
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::boolean[],
                $15::text[])
         AS d(id, event_id, webhook_id, event_type, leased, tenant_id)
    WHERE d.event_id IN (SELECT id FROM new_events)
)
SELECT id FROM new_events;

-- name: delivery_counts
-- The answer to a duplicate submission: the stored event's type and how many deliveries it has.
SELECT e.id AS event_id, e.type,
       (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id) AS n
FROM events e WHERE e.id = ANY($1::text[]);

-- name: get_event
-- One event within scope $2 (a tenant's id; NULL: the operator) with a summary of its
-- deliveries in that scope (an operational event also went to the operator's webhooks).
SELECT e.id, e.type, e.data, e.occurred_at, e.created_at, e.tenant_id,
       coalesce((SELECT jsonb_object_agg(s.status, s.n)
                 FROM (SELECT status, count(*) AS n FROM deliveries d
                       WHERE d.event_id = e.id AND ($2::text IS NULL OR d.tenant_id = $2)
                       GROUP BY status) s), '{}') AS deliveries
FROM events e WHERE e.id = $1 AND ($2::text IS NULL OR e.tenant_id = $2);

-- name: list_events
-- Newest first (by arrival), after a cursor, optionally of one type; within scope $5 and,
-- for the operator, of tenant $6 (events_tenant serves both). The summary counts only the
-- deliveries in scope. At most $4 rows, and only while their data adds up to $7 bytes (the
-- first row always): the candidates are measured without holding their data, which is read
-- only for the rows that fit. `fetched` is how many candidates there were.
WITH candidates AS (
    SELECT e.id, e.created_at, octet_length(e.data::text) AS size
    FROM events e
    WHERE ($5::text IS NULL OR e.tenant_id = $5)
      AND ($6::text IS NULL OR e.tenant_id = $6)
      AND ($1::timestamptz IS NULL OR (e.created_at, e.id) < ($1, $2))
      AND ($3::text IS NULL OR e.type = $3)
    ORDER BY e.created_at DESC, e.id DESC
    LIMIT $4
), measured AS (
    SELECT id, created_at,
           sum(size) OVER (ORDER BY created_at DESC, id DESC ROWS UNBOUNDED PRECEDING) AS running,
           row_number() OVER (ORDER BY created_at DESC, id DESC) AS n,
           count(*) OVER () AS fetched
    FROM candidates
)
SELECT e.id, e.type, e.data, e.occurred_at, e.created_at, e.tenant_id,
       coalesce((SELECT jsonb_object_agg(s.status, s.n)
                 FROM (SELECT status, count(*) AS n FROM deliveries d
                       WHERE d.event_id = e.id AND ($5::text IS NULL OR d.tenant_id = $5)
                       GROUP BY status) s), '{}') AS deliveries,
       m.fetched
FROM measured m JOIN events e ON e.id = m.id
WHERE m.n = 1 OR m.running <= $7
ORDER BY m.created_at DESC, m.id DESC;

-- name: event_as_stored
-- One event with its data as the exact text stored (the bytes a receiver got inside "data").
SELECT id, type, occurred_at, data::text AS data_text FROM events WHERE id = $1;

-- name: console_events
-- The console's events page: newest first (by arrival) after the keyset ($1, $2), of type $3
-- or any; served by events_created, or events_type_created for one type; of tenant $5 by
-- events_tenant (partial: the custom plan's `tenant_id = 'x'` implies it), $6 true: only the
-- operator's own. Only a size of the data, not the data itself, and the count of its
-- deliveries by status.
SELECT e.id, e.type, e.occurred_at, e.created_at, e.tenant_id,
       octet_length(e.data::text) AS size,
       coalesce((SELECT jsonb_object_agg(s.status, s.n)
                 FROM (SELECT status, count(*) AS n FROM deliveries d
                       WHERE d.event_id = e.id GROUP BY status) s), '{}') AS deliveries
FROM events e
WHERE ($1::timestamptz IS NULL OR (e.created_at, e.id) < ($1, $2))
  AND ($3::text IS NULL OR e.type = $3)
  AND ($5::text IS NULL OR e.tenant_id = $5)
  AND (NOT $6::boolean OR e.tenant_id IS NULL)
ORDER BY e.created_at DESC, e.id DESC
LIMIT $4;
