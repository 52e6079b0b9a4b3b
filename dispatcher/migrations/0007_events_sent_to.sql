-- The one webhook a ping or a test send was addressed to (NULL for fanned-out events).
-- "Send what was missed" must not hand such an event to any other webhook: it was never
-- meant for them. Nullable, no index: nothing looks it up, replay only reads it.
ALTER TABLE events ADD COLUMN sent_to text;
