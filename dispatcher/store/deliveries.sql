-- name: claim_due
-- The claim: lease up to $2 due deliveries of enabled webhooks not in $3 (lanes that are full).
-- SKIP LOCKED lets several instances claim at once without waiting on each other.
WITH due AS (
    SELECT d.id
    FROM deliveries d
    JOIN webhooks w ON w.id = d.webhook_id AND w.enabled
    WHERE d.status IN ('created', 'retrying')
      AND d.due_at <= now()
      AND NOT (d.webhook_id = ANY($3::text[]))
    ORDER BY d.due_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET lease_owner = $1, lease_until = now() + make_interval(secs => $4), due_at = NULL
FROM due, events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.id, d.event_id, d.webhook_id, d.event_type, d.attempt_count, d.attempts_base,
          coalesce(d.requeued_at, d.created_at) AS age_from, e.data::text AS data,
          e.occurred_at;

-- name: next_due
-- Seconds until the earliest due time of unfinished work (NULL when there is none).
SELECT extract(epoch FROM min(due_at) - now())::float8 FROM deliveries
WHERE status IN ('created', 'retrying') AND due_at IS NOT NULL;

-- name: cancel_orphans
-- Deliveries created for a webhook deleted at the same moment, or by a replay of an event
-- that retention pruned at the same moment (no foreign key holds it): nothing will ever
-- send them.
UPDATE deliveries d
SET status = 'cancelled', due_at = NULL, next_attempt_at = NULL, lease_owner = NULL,
    lease_until = NULL, updated_at = now()
WHERE d.status IN ('created', 'retrying') AND d.due_at <= now()
  AND (NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)
       OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id));

-- name: heal_held
-- Self-heal: held deliveries of webhooks that are enabled again (a hold that raced an enable).
UPDATE deliveries d
SET due_at = greatest(coalesce(d.next_attempt_at, now()), now())
FROM webhooks w
WHERE w.id = d.webhook_id AND w.enabled
  AND d.status IN ('created', 'retrying') AND d.due_at IS NULL AND d.lease_owner IS NULL;

-- name: park_held
-- Deliveries of disabled webhooks wait with due_at NULL (not claimable, not counted as due).
UPDATE deliveries d
SET due_at = NULL, lease_owner = NULL, lease_until = NULL
FROM webhooks w
WHERE w.id = d.webhook_id AND NOT w.enabled
  AND d.status IN ('created', 'retrying') AND d.due_at <= now();

-- name: hold_webhook
-- A webhook was disabled: its waiting deliveries are held (in-flight ones finish first).
UPDATE deliveries
SET due_at = NULL
WHERE webhook_id = $1 AND status IN ('created', 'retrying') AND lease_owner IS NULL;

-- name: resume_webhook
-- A webhook was enabled: its held deliveries come due again (leased ones are being sent).
UPDATE deliveries
SET due_at = greatest(coalesce(next_attempt_at, now()), now()), updated_at = now()
WHERE webhook_id = $1 AND status IN ('created', 'retrying') AND due_at IS NULL
  AND lease_owner IS NULL;

-- name: heartbeat
-- This instance is alive: its leases hold for another $2 seconds. One row per instance,
-- whatever it holds. The expiry is the owner's own, so instances configured with different
-- lease periods judge each other correctly.
INSERT INTO dispatcher_instances (owner, expires_at)
VALUES ($1, now() + make_interval(secs => $2))
ON CONFLICT (owner) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at;

-- name: instance_stopped
-- A clean stop, after its leases were given back.
DELETE FROM dispatcher_instances WHERE owner = $1;

-- name: reap_leases
-- The reaper: deliveries whose lease ran out (lease_until, set when taken) and whose owner's
-- heartbeat, which extends all its leases, expired too (crashed, killed, cut off) are due
-- again at once, for any instance to claim; those of a deleted webhook too, for the orphan
-- clean-up to cancel. Instances expired for an hour are forgotten.
WITH released AS (
    UPDATE deliveries d
    SET lease_owner = NULL, lease_until = NULL,
        due_at = CASE WHEN coalesce((SELECT w.enabled FROM webhooks w WHERE w.id = d.webhook_id),
                                    true)
                      THEN greatest(coalesce(d.next_attempt_at, now()), now()) END
    WHERE d.lease_owner IS NOT NULL AND d.status IN ('created', 'retrying')
      AND d.lease_until < now()
      AND NOT EXISTS (SELECT 1 FROM dispatcher_instances i
                      WHERE i.owner = d.lease_owner AND i.expires_at > now())
    RETURNING 1
), forgotten AS (
    DELETE FROM dispatcher_instances WHERE expires_at < now() - interval '1 hour'
)
SELECT count(*) FROM released;

-- name: leased_to
-- Unfinished deliveries leased to $1 whose own lease ran out, so held by the heartbeat alone
-- (the engine compares them with what it holds: any it does not hold are strays).
SELECT id FROM deliveries
WHERE lease_owner = $1 AND status IN ('created', 'retrying') AND lease_until < now();

-- name: release_leases
-- Give work back (shutdown, a lane that cannot take it, strays): due again at once elsewhere.
-- A deleted webhook's rows come due too, for the orphan clean-up to cancel. With $3, only
-- rows whose own lease ran out (a stray re-claimed meanwhile is being worked on again).
UPDATE deliveries d
SET lease_owner = NULL, lease_until = NULL,
    due_at = CASE WHEN coalesce((SELECT w.enabled FROM webhooks w WHERE w.id = d.webhook_id),
                                true)
                  THEN greatest(coalesce(d.next_attempt_at, now()), now()) END
WHERE d.id = ANY($1::text[]) AND d.lease_owner = $2 AND d.status IN ('created', 'retrying')
  AND (NOT $3::boolean OR d.lease_until < now());

-- name: record_outcomes
-- The batched outcome write, in one statement (one round trip, no BEGIN/COMMIT): the attempt
-- log, and each delivery's new state. Only rows this instance still leases and that are
-- unfinished change (a cancel or a takeover wins over a late outcome), and only if nobody
-- re-queued them by hand meanwhile (requeued_at is the fencing token). Every attempt is
-- logged either way, with whether it failed as the caller classified it (retry.classify).
-- $1 is the owner; $2... one array per column, built by store.deliveries.record_outcomes.
WITH o AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::integer[], $5::timestamptz[],
                         $6::timestamptz[], $7::integer[], $8::text[], $9::timestamptz[],
                         $10::text[], $11::double precision[], $12::text[], $13::text[],
                         $14::boolean[])
        AS o(id, status, attempt_count, attempted_at, next_attempt_at, status_code, error,
             age_from, webhook_id, duration_ms, response_body, url, failed)
), logged AS (
    INSERT INTO attempts (delivery_id, number, webhook_id, started_at, duration_ms,
                          status_code, response_body, error, url, failed)
    SELECT o.id, o.attempt_count, o.webhook_id, o.attempted_at, o.duration_ms, o.status_code,
           o.response_body, o.error, o.url, o.failed
    FROM o
)
UPDATE deliveries d
SET status = o.status,
    attempt_count = o.attempt_count,
    last_attempt_at = o.attempted_at,
    next_attempt_at = o.next_attempt_at,
    due_at = CASE WHEN w.enabled THEN o.next_attempt_at END,
    last_status_code = o.status_code,
    last_error = o.error,
    lease_owner = NULL,
    lease_until = NULL,
    updated_at = now()
FROM o LEFT JOIN webhooks w ON w.id = o.webhook_id
-- The batch is found by primary key (id = ANY: the planner knows it is at most that many
-- rows), whatever the statistics say. "Leased to us and unfinished" is one test no index
-- serves: as two, stale statistics (a table that grew fast) had the planner combine the
-- leased and unfinished indexes, or scan the table, and hash every leased row. Written as a
-- boolean CASE, not `CASE ... THEN lease_owner END = $1`: an equality on an expression is
-- guessed to keep 0.5% of the rows, so the planner expected one row and compared every
-- outcome with every delivery in a nested loop (quadratic in the batch: 40,000 comparisons
-- for 200 outcomes, 60% of the outcome write's Postgres CPU). This joins by hash.
WHERE d.id = ANY($2::text[]) AND d.id = o.id
  AND CASE WHEN d.status IN ('created', 'retrying') THEN d.lease_owner = $1 ELSE false END
  AND coalesce(d.requeued_at, d.created_at) = o.age_from;

-- name: get_delivery
-- One delivery within scope $2 (a tenant's id; NULL: the operator, any delivery).
SELECT * FROM deliveries WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2);

-- name: delivery_attempts
-- A delivery's attempts in order, if the delivery is within scope $2.
SELECT number, started_at, duration_ms, status_code, response_body, error, url
FROM attempts
WHERE delivery_id = $1
  AND ($2::text IS NULL
       OR EXISTS (SELECT 1 FROM deliveries d WHERE d.id = $1 AND d.tenant_id = $2))
ORDER BY number, id;

-- name: list_deliveries
-- Newest first, after a cursor, with optional filters; within scope $6 and, for the
-- operator, of tenant $7 (deliveries_tenant serves both).
SELECT * FROM deliveries
WHERE ($6::text IS NULL OR tenant_id = $6)
  AND ($7::text IS NULL OR tenant_id = $7)
  AND ($1::text IS NULL OR id < $1)
  AND ($2::text IS NULL OR webhook_id = $2)
  AND ($3::text IS NULL OR event_id = $3)
  AND ($4::text IS NULL OR status = $4)
ORDER BY id DESC
LIMIT $5;

-- name: retry_delivery
-- Manual retry: an immediate attempt with a fresh retry budget (not for successes).
UPDATE deliveries d
SET status = 'retrying',
    next_attempt_at = now(),
    -- An attempt in flight loses its lease, so its (older) outcome cannot overwrite this.
    lease_owner = NULL,
    lease_until = NULL,
    due_at = CASE WHEN (SELECT w.enabled FROM webhooks w WHERE w.id = d.webhook_id) THEN now()
             END,
    requeued_at = now(),
    attempts_base = d.attempt_count,
    updated_at = now()
WHERE d.id = $1 AND d.status <> 'success' AND ($2::text IS NULL OR d.tenant_id = $2)
  AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)
RETURNING d.*;

-- name: cancel_delivery
-- Stop a waiting delivery within scope $2; finished ones are left alone.
UPDATE deliveries
SET status = 'cancelled', next_attempt_at = NULL, due_at = NULL, lease_owner = NULL,
    lease_until = NULL, updated_at = now()
WHERE id = $1 AND status IN ('created', 'retrying') AND ($2::text IS NULL OR tenant_id = $2)
RETURNING *;

-- name: replay_webhook
-- Re-queue a webhook's finished deliveries with status $2 created since $3 (held if
-- disabled), within scope $4.
UPDATE deliveries
SET status = 'retrying', next_attempt_at = now(),
    due_at = CASE WHEN (SELECT w.enabled FROM webhooks w WHERE w.id = $1) THEN now() END,
    requeued_at = now(), attempts_base = attempt_count, updated_at = now()
WHERE webhook_id = $1 AND status = $2 AND created_at >= $3
  AND ($4::text IS NULL OR tenant_id = $4);

-- name: queue_depth
-- Unfinished deliveries by state, and the age of the oldest due one (for metrics).
SELECT count(*) FILTER (WHERE due_at <= now()) AS due,
       count(*) FILTER (WHERE due_at > now()) AS scheduled,
       count(*) FILTER (WHERE due_at IS NULL AND lease_owner IS NULL) AS held,
       count(*) FILTER (WHERE lease_owner IS NOT NULL) AS leased,
       coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0)::float8
           AS oldest_due_seconds
FROM deliveries
WHERE status IN ('created', 'retrying');

-- name: replay_webhook_tenant
-- "Send what was missed" starts here: webhook $1 (within scope $2) and its tenant, so the
-- event scan below is one of two plain statements an index serves. No row: it is gone.
SELECT tenant_id FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2);

-- name: events_since_page_tenant
-- "Send what was missed", one batch, for a tenant's webhook: tenant $5's events created since
-- $1, after the keyset ($2, $3), oldest first, $4 at a time. Only what matching needs: the
-- type, for operational events the webhook they are about, and the one webhook a ping or test
-- send was addressed to. events_tenant (tenant_id, created_at, id) serves range and order, so
-- other tenants' events are never read.
SELECT e.id, e.type, e.created_at, e.sent_to,
       CASE WHEN starts_with(e.type, 'dispatcher.') THEN e.data ->> 'webhook_id' END AS about
FROM events e
WHERE e.tenant_id = $5
  AND e.created_at >= $1
  AND ($2::timestamptz IS NULL OR (e.created_at, e.id) > ($2, $3))
ORDER BY e.created_at, e.id
LIMIT $4;

-- name: events_since_page_operator
-- The same for an operator's webhook: the operator's own events and operational events about
-- any tenant's webhook (the operator's subscribers get those too). events_created serves the
-- range; ties on created_at (one group commit shares it) are ordered by id in an incremental
-- sort of at most one batch.
SELECT e.id, e.type, e.created_at, e.sent_to,
       CASE WHEN starts_with(e.type, 'dispatcher.') THEN e.data ->> 'webhook_id' END AS about
FROM events e
WHERE e.created_at >= $1
  AND ($2::timestamptz IS NULL OR (e.created_at, e.id) > ($2, $3))
  AND (e.tenant_id IS NULL OR starts_with(e.type, 'dispatcher.'))
ORDER BY e.created_at, e.id
LIMIT $4;

-- name: insert_missing
-- Deliveries to webhook $4 for events ($2, types $3) that have none for it yet; $1 the new
-- ids. The unique (event_id, webhook_id) index makes a second replay create nothing. Held
-- (due_at NULL) if the webhook is disabled; due at once otherwise, or if it was just deleted
-- (so the orphan clean-up cancels them). They are of the webhook's tenant.
INSERT INTO deliveries (id, event_id, webhook_id, event_type, next_attempt_at, due_at,
                        tenant_id)
SELECT m.id, m.event_id, $4, m.event_type, now(),
       CASE WHEN coalesce((SELECT w.enabled FROM webhooks w WHERE w.id = $4), true)
            THEN now() END,
       (SELECT w.tenant_id FROM webhooks w WHERE w.id = $4)
FROM unnest($1::text[], $2::text[], $3::text[]) AS m(id, event_id, event_type)
ON CONFLICT (event_id, webhook_id) DO NOTHING;

-- name: console_deliveries
-- The console's log: newest first, after cursor $1, filtered by webhook $2, event $3,
-- status $4, event type $5, and a creation range as id bounds [$6, $7) (ids sort by creation
-- time, see ids.time_bound). Every filter is "column = x ORDER BY id" on an index of
-- (column, id) (webhook, event type, event; status for failed and cancelled, the rare final
-- states: any other status is most of the newest rows, found walking the primary key), or the
-- primary key for the range alone; custom plans (db.py) drop the unused tests. $8 keeps one tenant's (deliveries_tenant, a
-- partial index the custom plan's `tenant_id = 'x'` implies), $9 true only the operator's own.
SELECT * FROM deliveries
WHERE ($1::text IS NULL OR id < $1)
  AND ($2::text IS NULL OR webhook_id = $2)
  AND ($3::text IS NULL OR event_id = $3)
  AND ($4::text IS NULL OR status = $4)
  AND ($5::text IS NULL OR event_type = $5)
  AND ($6::text IS NULL OR id >= $6)
  AND ($7::text IS NULL OR id < $7)
  AND ($8::text IS NULL OR tenant_id = $8)
  AND (NOT $9::boolean OR tenant_id IS NULL)
ORDER BY id DESC
LIMIT $10;

-- name: console_bulk_page
-- One batch of a bulk action over the console's filters ($2-$9 as console_deliveries), after
-- keyset $1 (newest first), only deliveries the action applies to: $10 'retry' (anything but a
-- success, of a webhook that still exists) or 'cancel' (unfinished). Batches of $11 ids keep
-- each statement and its locks small; the keyset never revisits a row, so a retried row
-- (still not a success) is not picked again.
SELECT d.id FROM deliveries d
WHERE ($1::text IS NULL OR d.id < $1)
  AND ($2::text IS NULL OR d.webhook_id = $2)
  AND ($3::text IS NULL OR d.event_id = $3)
  AND ($4::text IS NULL OR d.status = $4)
  AND ($5::text IS NULL OR d.event_type = $5)
  AND ($6::text IS NULL OR d.id >= $6)
  AND ($7::text IS NULL OR d.id < $7)
  AND ($8::text IS NULL OR d.tenant_id = $8)
  AND (NOT $9::boolean OR d.tenant_id IS NULL)
  AND CASE WHEN $10 = 'retry'
           THEN d.status <> 'success'
                AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)
           ELSE d.status IN ('created', 'retrying') END
ORDER BY d.id DESC
LIMIT $11;

-- name: retry_many
-- Manual retry of the deliveries $1, as retry_delivery does for one.
UPDATE deliveries d
SET status = 'retrying',
    next_attempt_at = now(),
    lease_owner = NULL,
    lease_until = NULL,
    due_at = CASE WHEN (SELECT w.enabled FROM webhooks w WHERE w.id = d.webhook_id) THEN now()
             END,
    requeued_at = now(),
    attempts_base = d.attempt_count,
    updated_at = now()
WHERE d.id = ANY($1::text[]) AND d.status <> 'success'
  AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id);

-- name: cancel_many
-- Cancel the waiting deliveries among $1, as cancel_delivery does for one.
UPDATE deliveries
SET status = 'cancelled', next_attempt_at = NULL, due_at = NULL, lease_owner = NULL,
    lease_until = NULL, updated_at = now()
WHERE id = ANY($1::text[]) AND status IN ('created', 'retrying')
RETURNING id;

-- name: count_replay
-- How many deliveries replay_webhook would re-queue (the console's preview), within scope $4.
SELECT count(*) FROM deliveries
WHERE webhook_id = $1 AND status = $2 AND created_at >= $3
  AND ($4::text IS NULL OR tenant_id = $4);

-- name: count_missing
-- How many of the events $1 have no delivery to webhook $2 yet (the preview of insert_missing;
-- the unique (event_id, webhook_id) index answers each).
SELECT count(*) FROM unnest($1::text[]) AS m(event_id)
WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = m.event_id AND d.webhook_id = $2);

-- name: webhook_attempt_buckets
-- A webhook's attempts over the last $2 seconds in buckets of $3 seconds: how many, how many
-- succeeded, and the p50/p99 duration; the row with bucket NULL is the whole window. Bounded:
-- at most the $4 newest attempts, read backwards through attempts_webhook_time.
WITH recent AS (
    SELECT started_at, failed, duration_ms FROM attempts
    WHERE webhook_id = $1 AND started_at > now() - make_interval(secs => $2)
    ORDER BY started_at DESC
    LIMIT $4
)
SELECT to_timestamp(floor(extract(epoch FROM started_at) / $3) * $3) AS bucket,
       count(*) AS attempts,
       count(*) FILTER (WHERE NOT failed) AS succeeded,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99
FROM recent
GROUP BY GROUPING SETS ((1), ())
ORDER BY 1 NULLS FIRST;
