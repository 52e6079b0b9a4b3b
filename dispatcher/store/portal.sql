-- The tenant portal's reads. Every statement takes the session's tenant and applies it in
-- SQL (`tenant_id = $n`, or through a row that has it): the portal never filters in Python.

-- name: portal_tenant
-- The signed-in tenant, only if it is the one the session was issued for: $2 is its
-- creation time in microseconds, so a tenant deleted and created again under the same id
-- does not inherit the old sessions.
SELECT id, name FROM tenants
WHERE id = $1 AND (extract(epoch FROM created_at) * 1000000)::bigint = $2;

-- name: tenant_since
-- A tenant's creation time in microseconds (what a portal session is bound to).
SELECT (extract(epoch FROM created_at) * 1000000)::bigint FROM tenants WHERE id = $1;

-- name: tenant_webhooks
-- The tenant's webhooks ($1), newest first after a cursor ($2), optionally by enabled flag
-- ($3) and by a text in the name or URL ($4).
SELECT * FROM webhooks
WHERE tenant_id = $1
  AND ($2::text IS NULL OR id < $2)
  AND ($3::boolean IS NULL OR enabled = $3)
  AND ($4::text IS NULL OR strpos(lower(name), lower($4)) > 0 OR strpos(lower(url), lower($4)) > 0)
ORDER BY id DESC
LIMIT $5;

-- name: tenant_webhook_counts
-- How many webhooks the tenant has, and how many are enabled.
SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS active
FROM webhooks WHERE tenant_id = $1;

-- name: tenant_webhook_labels
-- Names and states of those of $1 that are the tenant's ($2), for lists of deliveries.
SELECT id, name, enabled FROM webhooks WHERE id = ANY($1::text[]) AND tenant_id = $2;

-- name: tenant_delivery_event
-- The event of one of the tenant's deliveries, reached through the delivery (which carries
-- the tenant), so a ping or test event is found like any other.
SELECT e.id, e.type, e.data, e.occurred_at, e.created_at
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = $1 AND d.tenant_id = $2;

-- name: tenant_deliveries
-- The tenant's deliveries ($1), newest first after a cursor ($2), optionally of one webhook
-- ($3) and in one status ($4).
SELECT * FROM deliveries
WHERE tenant_id = $1
  AND ($2::text IS NULL OR id < $2)
  AND ($3::text IS NULL OR webhook_id = $3)
  AND ($4::text IS NULL OR status = $4)
ORDER BY id DESC
LIMIT $5;

-- name: tenant_footprint
-- What deleting tenant $1 takes with it (the console says so before it is confirmed): its
-- webhooks, their unfinished deliveries, and its tokens.
SELECT (SELECT count(*) FROM webhooks WHERE tenant_id = $1) AS webhooks,
       (SELECT count(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE w.tenant_id = $1 AND d.status IN ('created', 'retrying')) AS unfinished,
       (SELECT count(*) FROM tenant_tokens WHERE tenant_id = $1) AS tokens;

-- name: tenant_success_rates
-- Attempts and successful attempts over the last $3 seconds per webhook among $2 that is
-- tenant $1's (another's id counts nothing); the (webhook_id, started_at) index serves it.
SELECT a.webhook_id, count(*) AS attempts,
       count(*) FILTER (WHERE NOT a.failed) AS succeeded
FROM webhooks w
JOIN attempts a ON a.webhook_id = w.id AND a.started_at > now() - make_interval(secs => $3)
WHERE w.id = ANY($2::text[]) AND w.tenant_id = $1
GROUP BY a.webhook_id;

-- name: tenant_unfinished
-- Unfinished deliveries of webhook $2 if it is tenant $1's (held while it is disabled).
SELECT count(*)
FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE w.id = $2 AND w.tenant_id = $1 AND d.status IN ('created', 'retrying');
