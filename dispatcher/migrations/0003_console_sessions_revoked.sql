-- Console sessions signed out before they expire. A session cookie is stateless (signed with a
-- key derived from the admin token), so logging out must be remembered where every instance
-- and worker sees it, and across restarts. Only a hash of the session's nonce is kept: this
-- table never holds anything that would let a reader sign in. Rows are pruned by retention
-- once the session would have expired anyway.
CREATE TABLE console_sessions_revoked (
    nonce_hash bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX console_sessions_revoked_expires ON console_sessions_revoked (expires_at);
