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

-- lease_until is now set once, when a lease is taken; the owner's heartbeat extends all its
-- leases past it. Leased rows wait with due_at NULL (not claimable, and out of the due index)
-- until their outcome, a release or the reaper makes them due again. Leases taken before this
-- version belong to no heartbeat: the reaper releases them once their lease_until passes.
-- (Upgrading: stop every instance of the previous version first.)
UPDATE deliveries SET due_at = NULL
WHERE lease_owner IS NOT NULL AND status IN ('created', 'retrying');

-- The reaper and the stray check find leased rows by owner.
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
