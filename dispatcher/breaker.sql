-- name: failures_in_window
-- Webhooks among $1 with at least $3 failed attempts in the last $2 seconds (failed as the
-- engine classified the answer: dispatcher.retry.classify, stored by the outcome write).
SELECT webhook_id, count(*) AS failures
FROM attempts
WHERE webhook_id = ANY($1::text[])
  AND started_at > now() - make_interval(secs => $2)
  AND failed
GROUP BY webhook_id
HAVING count(*) >= $3;

-- name: auto_disable
-- Disable still-enabled webhooks with reason "auto"; returns the ones that changed.
UPDATE webhooks
SET enabled = false, disabled_reason = 'auto', disabled_at = now(), updated_at = now()
WHERE id = ANY($1::text[]) AND enabled
RETURNING id, name, url, disabled_reason, disabled_at;
