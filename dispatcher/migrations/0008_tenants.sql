-- Tenants: a team's customers, each with its own webhooks, events, deliveries, tokens and
-- portal. Existing rows become the operator's own (tenant_id NULL).
CREATE TABLE tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    name       text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant's webhooks. No cascade: deleting a tenant deletes its webhooks and cancels their
-- unfinished deliveries in one transaction, explicitly (store/tenants.sql delete_tenant).
ALTER TABLE webhooks ADD COLUMN tenant_id text REFERENCES tenants (id);
-- Events and deliveries keep the tenant they were sent for, without a foreign key: the log of
-- a deleted tenant stays (visible to the operator only) until retention prunes it.
ALTER TABLE events ADD COLUMN tenant_id text;
ALTER TABLE deliveries ADD COLUMN tenant_id text;

-- Partial indexes: an operator-only deployment (every tenant_id NULL) maintains no entries,
-- so ingestion without tenants costs no more than before.
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX events_tenant ON events (tenant_id, created_at, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id) WHERE tenant_id IS NOT NULL;

-- Bearer tokens that act only inside one tenant. Only a SHA-256 of the token is kept, so the
-- table never holds anything that would let a reader call the API. Revoking deletes the row:
-- every instance looks tokens up here, so a revocation applies everywhere at once.
CREATE TABLE tenant_tokens (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX tenant_tokens_tenant ON tenant_tokens (tenant_id, created_at);

-- Sign-in links to a tenant's portal: single use (used_at set atomically when consumed),
-- expiring, stored as a SHA-256 of the link's secret.
CREATE TABLE portal_links (
    link_hash  bytea PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX portal_links_expires ON portal_links (expires_at);
