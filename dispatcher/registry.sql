-- name: all_webhooks
-- Every webhook with its valid secrets ("secret epoch-or-empty", newest first), for the
-- registry's snapshot.
SELECT w.*, coalesce(
    (SELECT array_agg(s.secret || ' ' || coalesce(extract(epoch FROM s.expires_at)::text, '')
                      ORDER BY s.id DESC)
     FROM webhook_secrets s
     WHERE s.webhook_id = w.id AND (s.expires_at IS NULL OR s.expires_at > now())),
    '{}') AS secret_list
FROM webhooks w
ORDER BY w.id;

-- name: one_webhook
-- One webhook as all_webhooks reads it (a registration change to apply).
SELECT w.*, coalesce(
    (SELECT array_agg(s.secret || ' ' || coalesce(extract(epoch FROM s.expires_at)::text, '')
                      ORDER BY s.id DESC)
     FROM webhook_secrets s
     WHERE s.webhook_id = w.id AND (s.expires_at IS NULL OR s.expires_at > now())),
    '{}') AS secret_list
FROM webhooks w
WHERE w.id = $1;
