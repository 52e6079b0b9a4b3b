-- name: start_failing
-- Webhooks among $1 whose last $2 attempts all failed (attempts.failed) become failing,
-- unless they already are: the conditional UPDATE lets exactly one instance see the change.
-- Each webhook reads its last $2 attempts and its last $3 seconds through
-- attempts_webhook_time, so the cost does not grow with its history.
WITH recent AS (
    SELECT c.id, r.failed, r.n, l.status_code, l.error, win.failures
    FROM unnest($1::text[]) AS c(id)
    CROSS JOIN LATERAL (
        SELECT count(*) AS n,
               count(*) FILTER (WHERE x.failed) AS failed
        FROM (SELECT a.failed FROM attempts a WHERE a.webhook_id = c.id
              ORDER BY a.started_at DESC LIMIT $2) x
    ) r
    CROSS JOIN LATERAL (
        SELECT a.status_code, a.error FROM attempts a WHERE a.webhook_id = c.id
        ORDER BY a.started_at DESC LIMIT 1
    ) l
    CROSS JOIN LATERAL (
        SELECT count(*) AS failures FROM attempts a
        WHERE a.webhook_id = c.id AND a.started_at > now() - make_interval(secs => $3)
          AND a.failed
    ) win
    WHERE r.n = $2 AND r.failed = $2
)
UPDATE webhooks w
SET failing_since = now()
FROM recent
WHERE w.id = recent.id AND w.failing_since IS NULL
RETURNING w.id, w.name, w.failing_since, recent.failures, recent.status_code, recent.error;

-- name: recover
-- Failing webhooks among $1 (they just succeeded) are failing no more; returns those that
-- changed and since when they had been failing. The row lock makes a second instance doing
-- the same wait, then find failing_since already NULL and change nothing.
WITH was AS (
    SELECT id, failing_since FROM webhooks
    WHERE id = ANY($1::text[]) AND failing_since IS NOT NULL
    FOR UPDATE
)
UPDATE webhooks w
SET failing_since = NULL
FROM was
WHERE w.id = was.id AND w.failing_since IS NOT NULL
RETURNING w.id, w.name, was.failing_since, now() AS recovered_at;
