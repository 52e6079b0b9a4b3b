-- Leases are kept alive by one heartbeat row per instance instead of by renewing every
-- leased delivery: renewal no longer costs a write per row held in memory (tens of thousands
-- during a backlog). A delivery leased to an instance whose heartbeat stopped is released by
-- any other instance's scheduler (the reaper), and then claimed as usual.
CREATE TABLE dispatcher_instances (
    owner        text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- The owner's leases hold until then (its last heartbeat plus its own lease period).
    expires_at   timestamptz NOT NULL
);

-- lease_until becomes leased_at: when the lease was taken. An instance releases rows leased
-- to it longer ago than the lease period that it no longer holds in memory (strays left by
-- an error path), so a live instance cannot sit on work forever.
ALTER TABLE deliveries RENAME COLUMN lease_until TO leased_at;

-- Leased rows wait with due_at NULL (not claimable, and out of the due index) until their
-- outcome, a release or the reaper makes them due again. Leases taken before this version
-- belong to no heartbeat: the reaper releases them at the first look. (Upgrading: stop every
-- instance of the previous version first; they renew their leases through lease_until.)
UPDATE deliveries SET due_at = NULL, leased_at = now()
WHERE lease_owner IS NOT NULL AND status IN ('created', 'retrying');

-- The reaper and the stray check find leased rows by owner.
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
