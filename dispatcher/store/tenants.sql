-- name: insert_tenant
-- Register a tenant; NULL when the id is taken.
INSERT INTO tenants (id, name, metadata)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, metadata, created_at, updated_at;

-- name: tenant_log_remains
-- Whether events or deliveries of a (deleted) tenant with this id are still kept: a new tenant
-- under that id would see them. Served by the partial indexes events_tenant and
-- deliveries_tenant.
SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1)
    OR EXISTS (SELECT 1 FROM deliveries WHERE tenant_id = $1);

-- name: get_tenant
-- One tenant by id.
SELECT id, name, metadata, created_at, updated_at FROM tenants WHERE id = $1;

-- name: list_tenants
-- By id, after a cursor (the last id seen); $3, if given, keeps tenants whose id or name
-- contains it, case-insensitively (the console's search).
SELECT id, name, metadata, created_at, updated_at FROM tenants
WHERE ($1::text IS NULL OR id > $1)
  AND ($3::text IS NULL
       OR strpos(lower(id), lower($3)) > 0 OR strpos(lower(name), lower($3)) > 0)
ORDER BY id
LIMIT $2;

-- name: update_tenant
-- Change the name and/or the metadata (NULL keeps the current value).
UPDATE tenants
SET name = coalesce($2, name),
    metadata = coalesce($3::jsonb, metadata),
    updated_at = now()
WHERE id = $1
RETURNING id, name, metadata, created_at, updated_at;

-- name: lock_tenant
-- The tenant about to be deleted, locked: a webhook being created for it concurrently waits
-- on its foreign key check and then fails, instead of surviving its tenant.
SELECT id FROM tenants WHERE id = $1 FOR UPDATE;

-- name: delete_tenant_webhooks
-- A deleted tenant's webhooks go (their secrets with them), and their unfinished deliveries
-- are cancelled, as DELETE /v1/webhooks/{id} does for one.
WITH gone AS (
    DELETE FROM webhooks WHERE tenant_id = $1 RETURNING id
), cancelled AS (
    UPDATE deliveries
    SET status = 'cancelled', next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL,
        updated_at = now()
    WHERE webhook_id IN (SELECT id FROM gone) AND status IN ('created', 'retrying')
    RETURNING 1
)
SELECT id FROM gone;

-- name: delete_tenant
-- The tenant itself; its tokens and portal links go by cascade.
DELETE FROM tenants WHERE id = $1 RETURNING id;

-- name: export_tenants
-- Every tenant as `dispatcher export` writes it.
SELECT id, name, metadata, created_at FROM tenants ORDER BY id;

-- name: import_tenant
-- `dispatcher import`: insert a tenant, or update it when its name or metadata differ (only
-- then does updated_at move). No row when nothing changed; `inserted` tells the two apart.
INSERT INTO tenants AS t (id, name, metadata, created_at, updated_at)
VALUES ($1, $2, $3, coalesce($4, now()), now())
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, metadata = EXCLUDED.metadata, updated_at = now()
WHERE (t.name, t.metadata) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.metadata)
RETURNING t.id, (t.xmax = 0) AS inserted;

-- name: insert_token
-- A tenant token, stored as the SHA-256 of its secret; no row when the tenant does not exist.
INSERT INTO tenant_tokens (id, tenant_id, token_hash, expires_at)
SELECT $1, id, $3, $4 FROM tenants WHERE id = $2
RETURNING id, tenant_id, created_at, expires_at;

-- name: list_tokens
-- A tenant's tokens, newest first (ids sort by creation time), without their hashes.
SELECT id, tenant_id, created_at, expires_at FROM tenant_tokens
WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;

-- name: delete_token
-- Revoke a token: every instance looks tokens up here, so it stops working everywhere at once.
DELETE FROM tenant_tokens WHERE tenant_id = $1 AND id = $2 RETURNING id;

-- name: token_principal
-- Authentication of a tenant token (every request that presents one): by the unique hash
-- index, unexpired only.
SELECT id, tenant_id FROM tenant_tokens
WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > now());

-- name: insert_portal_link
-- A single-use sign-in link to a tenant's portal; no row when the tenant does not exist.
INSERT INTO portal_links (link_hash, tenant_id, expires_at)
SELECT $1, id, $3 FROM tenants WHERE id = $2
RETURNING tenant_id, expires_at;

-- name: consume_portal_link
-- Sign in with a link: marks it used in the same statement that checks it, so two browsers
-- racing with one link cannot both get in. The tenant id, or no row (unknown, used, expired).
UPDATE portal_links SET used_at = now()
WHERE link_hash = $1 AND used_at IS NULL AND expires_at > now()
RETURNING tenant_id;

-- name: portal_link_state
-- Why a link did not sign in (for the page that says so): used, expired, or no row.
SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired FROM portal_links
WHERE link_hash = $1;

-- name: prune_portal_links
-- Links that expired more than a day ago are of no use to anyone.
DELETE FROM portal_links WHERE expires_at < now() - interval '1 day';
