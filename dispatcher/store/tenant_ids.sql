-- name: all_tenant_ids
-- Every tenant's id, for the registry's full load.
SELECT id FROM tenants;

-- name: tenant_exists
-- Whether one tenant exists (an id not in the registry's set, or a NOTIFYed change).
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1);
