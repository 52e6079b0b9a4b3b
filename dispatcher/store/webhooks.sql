-- name: insert_webhook
-- Create a webhook (of tenant $14, NULL: the operator's); the secret row is inserted
-- separately in the same transaction.
INSERT INTO webhooks (id, name, url, event_types, enabled, disabled_reason, disabled_at,
                      description, headers, metadata, include_payload, max_retries,
                      timeout_seconds, rate_limit_per_second, max_in_flight, tenant_id)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN NULL ELSE 'manual' END,
        CASE WHEN $5 THEN NULL ELSE now() END, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING *;

-- name: insert_secret
-- Add the current signing secret of a webhook.
INSERT INTO webhook_secrets (webhook_id, secret) VALUES ($1, $2);

-- name: get_webhook
-- One webhook by id, within scope $2 (a tenant's id; NULL: the operator, any webhook).
SELECT * FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2);

-- name: lock_webhook
-- One webhook by id within scope $2, locked for a read-modify-write (the statements that
-- follow in its transaction change only this row's id, already proven in scope).
SELECT * FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE;

-- name: list_webhooks
-- Newest first, after a cursor, optionally by enabled flag and by an event type they receive;
-- within scope $5 and, for the operator, of tenant $6 (webhooks_tenant serves both).
SELECT * FROM webhooks
WHERE ($5::text IS NULL OR tenant_id = $5)
  AND ($6::text IS NULL OR tenant_id = $6)
  AND ($1::text IS NULL OR id < $1)
  AND ($2::boolean IS NULL OR enabled = $2)
  AND ($3::text IS NULL OR EXISTS (
        SELECT 1 FROM unnest(event_types) AS p
        WHERE p = $3 OR p = '*'
           OR (right(p, 2) = '.*' AND starts_with($3, left(p, -1)))))
ORDER BY id DESC
LIMIT $4;

-- name: all_webhooks
-- Every webhook, for export and for the in-memory registry.
SELECT * FROM webhooks ORDER BY id;

-- name: delete_webhook
-- Remove a webhook within scope $2 (its secrets go with it).
DELETE FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) RETURNING id;

-- name: cancel_unfinished
-- A deleted webhook's pending deliveries are cancelled, not sent.
UPDATE deliveries
SET status = 'cancelled', next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL,
    updated_at = now()
WHERE webhook_id = $1 AND status IN ('created', 'retrying');

-- name: set_enabled
-- Enable (reason NULL) or disable (with a reason) a webhook within scope $4.
UPDATE webhooks
SET enabled = $2,
    disabled_reason = CASE WHEN $2 THEN NULL ELSE $3 END,
    disabled_at = CASE WHEN $2 THEN NULL
                       WHEN enabled THEN now()
                       ELSE coalesce(disabled_at, now()) END,
    updated_at = now()
WHERE id = $1 AND ($4::text IS NULL OR tenant_id = $4)
RETURNING *;

-- name: current_secret
-- The secret new signatures are made with, of a webhook within scope $2.
SELECT s.secret FROM webhook_secrets s JOIN webhooks w ON w.id = s.webhook_id
WHERE s.webhook_id = $1 AND s.expires_at IS NULL AND ($2::text IS NULL OR w.tenant_id = $2);

-- name: retire_secret
-- Rotation, step 1: the current secret keeps signing for the grace period ($2 seconds).
UPDATE webhook_secrets
SET expires_at = now() + make_interval(secs => $2)
WHERE webhook_id = $1 AND expires_at IS NULL;

-- name: prune_secrets
-- Rotation, step 2: forget secrets whose grace period is over, and every previous one but the
-- newest $2: each still signs, and repeated rotation must not grow the signature header past
-- what receivers accept.
DELETE FROM webhook_secrets
WHERE webhook_id = $1 AND expires_at IS NOT NULL
  AND (expires_at <= now()
       OR id NOT IN (SELECT id FROM webhook_secrets
                     WHERE webhook_id = $1 AND expires_at IS NOT NULL
                     ORDER BY id DESC LIMIT $2));

-- name: signing_secrets
-- Every secret that signs right now, newest first.
SELECT secret FROM webhook_secrets
WHERE webhook_id = $1 AND (expires_at IS NULL OR expires_at > now())
ORDER BY id DESC;

-- name: export_webhooks
-- Every webhook with its current signing secret, for `dispatcher export`.
SELECT w.*, s.secret
FROM webhooks w
LEFT JOIN webhook_secrets s ON s.webhook_id = w.id AND s.expires_at IS NULL
ORDER BY w.id;

-- name: import_webhook
-- `dispatcher import`: insert a webhook under its own id, or update it when a field differs
-- (only then does updated_at move). Returns no row when nothing changed; `inserted` tells an
-- insert from an update. $7/$16 (disabled_at/created_at) apply to inserts only, and so does
-- $17, the tenant it belongs to (NULL: the operator's): a webhook never changes owner, its
-- deliveries and log stay with the tenant they were sent for.
INSERT INTO webhooks AS w (id, name, url, event_types, enabled, disabled_reason, disabled_at,
                           description, headers, metadata, include_payload, max_retries,
                           timeout_seconds, rate_limit_per_second, max_in_flight,
                           created_at, updated_at, tenant_id)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $5 THEN NULL ELSE coalesce($7, now()) END,
        $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, now()), now(), $17)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name,
    url = EXCLUDED.url,
    event_types = EXCLUDED.event_types,
    enabled = EXCLUDED.enabled,
    disabled_reason = EXCLUDED.disabled_reason,
    disabled_at = CASE WHEN EXCLUDED.enabled THEN NULL
                       WHEN w.enabled THEN now()
                       ELSE w.disabled_at END,
    description = EXCLUDED.description,
    headers = EXCLUDED.headers,
    metadata = EXCLUDED.metadata,
    include_payload = EXCLUDED.include_payload,
    max_retries = EXCLUDED.max_retries,
    timeout_seconds = EXCLUDED.timeout_seconds,
    rate_limit_per_second = EXCLUDED.rate_limit_per_second,
    max_in_flight = EXCLUDED.max_in_flight,
    updated_at = now()
WHERE (w.name, w.url, w.event_types, w.enabled, w.disabled_reason, w.description, w.headers,
       w.metadata, w.include_payload, w.max_retries, w.timeout_seconds,
       w.rate_limit_per_second, w.max_in_flight)
      IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.url, EXCLUDED.event_types, EXCLUDED.enabled,
       EXCLUDED.disabled_reason, EXCLUDED.description, EXCLUDED.headers, EXCLUDED.metadata,
       EXCLUDED.include_payload, EXCLUDED.max_retries, EXCLUDED.timeout_seconds,
       EXCLUDED.rate_limit_per_second, EXCLUDED.max_in_flight)
RETURNING w.*, (w.xmax = 0) AS inserted;

-- name: disable_if_enabled
-- The engine disables a webhook (410 Gone); NULL when it was already disabled.
UPDATE webhooks
SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
WHERE id = $1 AND enabled
RETURNING *;

-- name: secrets_on_record
-- Every secret still stored for a webhook, newest first, with when it started and stopped
-- signing (the console rebuilds an attempt's signature only when it knows which signed it).
SELECT secret, created_at, expires_at FROM webhook_secrets WHERE webhook_id = $1 ORDER BY id DESC;

-- name: patch_webhook
-- A partial update: only the columns named in $3 change (the others keep their value), within
-- scope $2 (a tenant's id; NULL: the operator). $4-$14 are the new values, in the order of
-- store.webhooks.PATCHABLE.
UPDATE webhooks SET
    name = CASE WHEN 'name' = ANY($3::text[]) THEN $4::text ELSE name END,
    url = CASE WHEN 'url' = ANY($3::text[]) THEN $5::text ELSE url END,
    event_types = CASE WHEN 'event_types' = ANY($3::text[]) THEN $6::text[] ELSE event_types END,
    description = CASE WHEN 'description' = ANY($3::text[]) THEN $7::text ELSE description END,
    headers = CASE WHEN 'headers' = ANY($3::text[]) THEN $8::jsonb ELSE headers END,
    metadata = CASE WHEN 'metadata' = ANY($3::text[]) THEN $9::jsonb ELSE metadata END,
    include_payload = CASE WHEN 'include_payload' = ANY($3::text[]) THEN $10::boolean
                           ELSE include_payload END,
    max_retries = CASE WHEN 'max_retries' = ANY($3::text[]) THEN $11::integer
                       ELSE max_retries END,
    timeout_seconds = CASE WHEN 'timeout_seconds' = ANY($3::text[]) THEN $12::float8
                           ELSE timeout_seconds END,
    rate_limit_per_second = CASE WHEN 'rate_limit_per_second' = ANY($3::text[]) THEN $13::float8
                                 ELSE rate_limit_per_second END,
    max_in_flight = CASE WHEN 'max_in_flight' = ANY($3::text[]) THEN $14::integer
                         ELSE max_in_flight END,
    updated_at = now()
WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
RETURNING *;
