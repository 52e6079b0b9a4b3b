-- name: prune_deliveries
-- Finished deliveries last changed more than $1 days ago, and their attempts, $2 at a time,
-- oldest first after id $4. $3 is the id bound of that age (ids sort by creation time and a
-- delivery finishes after it is created): the id index serves the scan, and the keyset means
-- no batch walks again past the rows an earlier one deleted. The last id it looked at comes
-- back with how many it looked at and how many it deleted.
WITH doomed AS (
    SELECT id FROM deliveries
    WHERE id > $4 AND id < $3
      AND status IN ('success', 'failed', 'cancelled')
      AND updated_at < now() - make_interval(days => $1)
    ORDER BY id
    LIMIT $2
), gone AS (
    -- Tested again on the row itself: a delivery retried meanwhile is not finished any more.
    DELETE FROM deliveries d USING doomed
    WHERE d.id = doomed.id AND d.status IN ('success', 'failed', 'cancelled')
      AND d.updated_at < now() - make_interval(days => $1)
    RETURNING d.id
), logged AS (
    DELETE FROM attempts a USING gone WHERE a.delivery_id = gone.id
)
SELECT (SELECT count(*) FROM doomed) AS looked_at, (SELECT count(*) FROM gone) AS deleted,
       (SELECT max(id) FROM doomed) AS last_id;

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
