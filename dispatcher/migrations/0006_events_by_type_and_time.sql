-- Events of one type, newest first (GET /v1/events?type= and the console's events page) are
-- ordered by (created_at, id). The old (type, id) index served no statement in that order;
-- this one replaces it, so ingestion maintains no more indexes than before.
CREATE INDEX events_type_created ON events (type, created_at, id);
DROP INDEX events_type;
