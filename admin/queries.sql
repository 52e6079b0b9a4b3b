-- name: search_webhooks
-- Webhooks whose name or URL contains $3 (case-insensitive; '' matches all), newest first,
-- after a cursor, optionally of one tenant ($5) or ($6 true) only the operator's own.
SELECT * FROM webhooks
WHERE ($5::text IS NULL OR tenant_id = $5)
  AND (NOT $6::boolean OR tenant_id IS NULL)
  AND ($1::text IS NULL OR id < $1)
  AND ($2::boolean IS NULL OR enabled = $2)
  AND (strpos(lower(name), lower($3)) > 0 OR strpos(lower(url), lower($3)) > 0)
ORDER BY id DESC
LIMIT $4;

-- name: success_rates
-- Attempts and successful attempts per webhook over the last $2 seconds (one grouped query;
-- the (webhook_id, started_at) index serves it). Whether an attempt failed is what the
-- outcome write stored (dispatcher.retry.classify), the failure window's own count.
SELECT webhook_id, count(*) AS attempts,
       count(*) FILTER (WHERE NOT failed) AS succeeded
FROM attempts
WHERE webhook_id = ANY($1::text[]) AND started_at > now() - make_interval(secs => $2)
GROUP BY webhook_id;

-- name: attempts_per_minute
-- Attempts per minute over the last $1 seconds, succeeded vs failed. Joined through webhooks
-- so each webhook's slice comes from the (webhook_id, started_at) index, not a full scan.
SELECT date_trunc('minute', a.started_at) AS minute,
       count(*) FILTER (WHERE NOT a.failed) AS succeeded,
       count(*) FILTER (WHERE a.failed) AS failed
FROM webhooks w
JOIN attempts a ON a.webhook_id = w.id AND a.started_at > now() - make_interval(secs => $1)
GROUP BY 1
ORDER BY 1;

-- name: events_since
-- Events accepted over the last $1 seconds, and their deliveries by status.
SELECT count(*) FROM events WHERE created_at > now() - make_interval(secs => $1);

-- name: deliveries_since
SELECT d.status, count(*) AS n
FROM events e JOIN deliveries d ON d.event_id = e.id
WHERE e.created_at > now() - make_interval(secs => $1)
GROUP BY d.status;

-- name: unfinished
-- A webhook's unfinished deliveries (held while it is disabled).
SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status IN ('created', 'retrying');

-- name: webhook_names
-- Names and states of the webhooks among $1 (for lists of deliveries).
SELECT id, name, enabled FROM webhooks WHERE id = ANY($1::text[]);

-- name: count_disabled
SELECT count(*) FROM webhooks WHERE NOT enabled;

-- name: webhook_counts
SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS active FROM webhooks;
