-- name: prune_deliveries
-- Finished deliveries (and, by cascade, their attempts) older than $1 days, $2 at a time.
DELETE FROM deliveries
WHERE id IN (SELECT id FROM deliveries
             WHERE status IN ('success', 'failed', 'cancelled')
               AND updated_at < now() - make_interval(days => $1)
             LIMIT $2);

-- name: prune_events
-- Events older than $1 days that have no deliveries left, $2 at a time.
DELETE FROM events
WHERE id IN (SELECT e.id FROM events e
             WHERE e.created_at < now() - make_interval(days => $1)
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
             LIMIT $2);

-- name: try_lock
-- One pruning instance at a time; the others skip this round.
SELECT pg_try_advisory_lock($1);

-- name: unlock
SELECT pg_advisory_unlock($1);
