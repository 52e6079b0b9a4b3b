-- Delivery semantics and the console's filters.
--
-- One delivery per (event, webhook): "send what was missed" inserts with ON CONFLICT DO
-- NOTHING against this, so replaying the same window twice creates nothing. Ingestion never
-- makes two (an event's deliveries are inserted with the event, one per matching webhook).
-- Its leading column serves every lookup the old (event_id) index did, so that one goes.
CREATE UNIQUE INDEX deliveries_event_webhook ON deliveries (event_id, webhook_id);
DROP INDEX deliveries_event;

-- The console filters deliveries by event type, newest first (ids sort by creation time).
CREATE INDEX deliveries_event_type ON deliveries (event_type, id);

-- Set when a webhook's attempts start failing (dispatcher.webhook.failing was published),
-- cleared by its next success (dispatcher.webhook.recovered). Both are conditional UPDATEs,
-- so across instances exactly one publishes each transition; nothing is written otherwise.
ALTER TABLE webhooks ADD COLUMN failing_since timestamptz;
