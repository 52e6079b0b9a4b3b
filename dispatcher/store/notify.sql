-- name: notify
-- Tell other instances (LISTEN dispatcher); inside a transaction it is sent on commit.
SELECT pg_notify($1, $2);
