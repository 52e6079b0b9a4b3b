-- The whole product's schema: registrations, the event log, the delivery queue and attempts.

CREATE TABLE webhooks (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    url                   text NOT NULL,
    event_types           text[] NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text CHECK (disabled_reason IN ('manual', 'auto', 'gone')),
    disabled_at           timestamptz,
    description           text NOT NULL DEFAULT '',
    headers               jsonb NOT NULL DEFAULT '{}',
    metadata              jsonb NOT NULL DEFAULT '{}',
    include_payload       boolean NOT NULL DEFAULT true,
    max_retries           integer,
    timeout_seconds       double precision,
    rate_limit_per_second double precision,
    max_in_flight         integer,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (enabled = (disabled_reason IS NULL))
);
CREATE INDEX webhooks_event_types ON webhooks USING gin (event_types);

-- Signing secrets. The current one has expires_at NULL; a rotated-out one keeps signing
-- until expires_at (the grace period), so receivers can switch without dropping requests.
CREATE TABLE webhook_secrets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id  text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX webhook_secrets_webhook ON webhook_secrets (webhook_id, created_at);
CREATE UNIQUE INDEX webhook_secrets_one_current ON webhook_secrets (webhook_id)
    WHERE expires_at IS NULL;

CREATE TABLE event_types (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Events as accepted. The id is the producer's idempotency key (or one we generated).
-- data is json, not jsonb: stored and sent back byte for byte, and cheaper to insert.
CREATE TABLE events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    data        json NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_created ON events (created_at);

-- One row per (event, webhook). No foreign key to webhooks: the log outlives a deleted
-- webhook. lease_owner/lease_until mark the instance currently sending it.
-- due_at is the engine's own clock: when the row may next be claimed. It is next_attempt_at
-- for waiting work, the lease expiry while an instance holds it (so a crashed instance's work
-- comes due again by itself), and NULL when held for a disabled webhook or finished.
-- requeued_at/attempts_base restart the retry budget and age after a manual retry or replay.
CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id       text NOT NULL,
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'created'
                     CHECK (status IN ('created', 'retrying', 'success', 'failed', 'cancelled')),
    attempt_count    integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz,
    due_at           timestamptz,
    requeued_at      timestamptz,
    attempts_base    integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    lease_owner      text,
    lease_until      timestamptz
);
-- The claim query's index: only unfinished work, ordered by when it is due.
CREATE INDEX deliveries_due ON deliveries (due_at)
    WHERE status IN ('created', 'retrying') AND due_at IS NOT NULL;
-- Held deliveries of a webhook, resumed when it is enabled again.
CREATE INDEX deliveries_unfinished_webhook ON deliveries (webhook_id)
    WHERE status IN ('created', 'retrying');
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_status ON deliveries (status, id);
-- Retention prunes finished deliveries by age.
CREATE INDEX deliveries_finished ON deliveries (updated_at)
    WHERE status IN ('success', 'failed', 'cancelled');

-- Every attempt as it happened. Not keyed by (delivery, number): after a lease takeover two
-- instances may both have tried the same number, and both attempts are recorded.
CREATE TABLE attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number        integer NOT NULL,
    webhook_id    text NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    response_body text,
    error         text,
    url           text NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
-- The failure window and the overview read recent attempts per webhook.
CREATE INDEX attempts_webhook_time ON attempts (webhook_id, started_at);
