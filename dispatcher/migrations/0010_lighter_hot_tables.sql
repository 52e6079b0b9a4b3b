-- The hot tables carry only what their readers need (issue 14: every index and foreign key
-- a delivery's insert and outcome update maintain is Postgres CPU per delivery).
--
-- No foreign-key checks per row: an attempt is written only by the outcome write of a
-- delivery that exists, and retention deletes a delivery's attempts with it (retention.sql);
-- a delivery is inserted with its event in one statement, or by "send what was missed" from
-- an event it reads. Events are pruned only once no delivery is left; a replay racing that
-- prune leaves a delivery without its event, which the scheduler's orphan clean-up cancels
-- (cancel_orphans). The checks cost 13 us of Postgres CPU per delivery.
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;

-- The lease columns are read only among unfinished rows, which deliveries_unfinished_webhook
-- (partial, a few rows per webhook) already lists: the reaper and the stray check scan that.
DROP INDEX deliveries_leased;

-- Retention finds old finished deliveries by id (ids sort by creation, and a delivery
-- finishes after it was created), so no index needs to follow updated_at.
DROP INDEX deliveries_finished;

-- The status filter (API, console, bulk actions) is served by an index for the two final
-- states that are rare, failed and cancelled. A delivery that succeeds, nearly all of them,
-- never enters it. Filtering on success walks the id index, where nearly every row is one;
-- on created or retrying too, newest first, where unfinished rows are (they are recent).
CREATE INDEX deliveries_failed ON deliveries (status, id)
    WHERE status IN ('failed', 'cancelled');
DROP INDEX deliveries_status;
