-- name: revoke_session
-- Remember a signed-out console session ($1: the SHA-256 of its nonce) until it would have
-- expired anyway ($2); rows of sessions already past their expiry go in the same statement.
WITH pruned AS (
    DELETE FROM console_sessions_revoked WHERE expires_at < now()
)
INSERT INTO console_sessions_revoked (nonce_hash, expires_at) VALUES ($1, $2)
ON CONFLICT (nonce_hash) DO NOTHING;

-- name: session_revoked
-- Whether the console session whose nonce hashes to $1 was signed out (a primary-key lookup).
SELECT EXISTS (SELECT 1 FROM console_sessions_revoked WHERE nonce_hash = $1);
