-- Each attempt stores whether it failed (anything but success, as dispatcher.retry.classify
-- reads the answer), written by the outcome write: the failure window (breaker.sql), the
-- failing watch (failing.sql) count this column instead of re-deriving the rule in SQL.
-- Adding a NOT NULL column with a constant default rewrites nothing; only the
-- failed attempts already logged are touched, once, here. The outcome write always sets it.
ALTER TABLE attempts ADD COLUMN failed boolean NOT NULL DEFAULT false;
UPDATE attempts SET failed = true
WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299;
