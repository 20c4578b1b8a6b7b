-- stile's Postgres schema, version 1: the same data as the redb file's tables
-- (src/store/tables.rs), as rows with the columns that are looked up, ordered or filtered
-- by, and the rest of each record as JSON (the same serde forms the redb file keeps).
-- Ids are the 128-bit ULIDs as uuid (uuid compares bytewise, so ids order by time); times
-- are Unix seconds or ms as the column says, like the records.

-- Key-value bookkeeping: 'payload_key_id' (the key payloads are sealed with).
CREATE TABLE stile_meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);

-- API keys by the SHA-256 of the key; the key itself is never stored.
CREATE TABLE api_keys (
    hash   bytea PRIMARY KEY,
    record jsonb NOT NULL
);

-- Applications (tenants). A uid names one application per mode.
CREATE TABLE apps (
    id     uuid PRIMARY KEY,
    mode   smallint NOT NULL,
    uid    text,
    record jsonb NOT NULL
);
CREATE UNIQUE INDEX apps_uid ON apps (mode, uid) WHERE uid IS NOT NULL;
CREATE INDEX apps_by_mode ON apps (mode, id);

-- Each mode's default application.
CREATE TABLE default_apps (
    mode smallint PRIMARY KEY,
    app  uuid NOT NULL
);

-- Deleted applications whose data is still being purged.
CREATE TABLE deleted_apps (
    app        uuid PRIMARY KEY,
    deleted_ms bigint NOT NULL
);

-- Webhook endpoints.
CREATE TABLE endpoints (
    app    uuid NOT NULL,
    id     uuid NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (app, id)
);

-- Endpoints by label, for ?label=.
CREATE TABLE endpoint_labels (
    app      uuid NOT NULL,
    label    text NOT NULL,
    endpoint uuid NOT NULL,
    PRIMARY KEY (app, label, endpoint)
);

-- Endpoints by each name in their enabled_events ('*', a type, a Kayle name), so a
-- publish reads only the endpoints an event goes to.
CREATE TABLE endpoint_subscriptions (
    app      uuid NOT NULL,
    name     text NOT NULL,
    endpoint uuid NOT NULL,
    PRIMARY KEY (app, name, endpoint)
);

-- Endpoints whose latest attempt failed: the current run of failures.
CREATE TABLE endpoint_health (
    endpoint uuid PRIMARY KEY,
    since_ms bigint NOT NULL,
    failures integer NOT NULL
);

-- `stile listen` endpoints, one per API key and application.
CREATE TABLE listeners (
    app      uuid NOT NULL,
    key_hash bytea NOT NULL,
    endpoint uuid NOT NULL,
    PRIMARY KEY (app, key_hash)
);

-- The stored answers to idempotency keys.
CREATE TABLE idempotency (
    app     uuid NOT NULL,
    key     text NOT NULL,
    created bigint NOT NULL,
    record  jsonb NOT NULL,
    PRIMARY KEY (app, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created);

-- Events. `body` is the sealed payload; `pending` counts deliveries not yet final;
-- `failed`: the latest attempt to some endpoint failed for good; `hold_until_ms`: the
-- payload stays (past retention) until then, for resends of failed deliveries.
CREATE TABLE events (
    app           uuid NOT NULL,
    id            uuid NOT NULL,
    mode          smallint NOT NULL,
    event_type    text NOT NULL,
    created       bigint NOT NULL,
    data_id       text,
    body          bytea NOT NULL,
    pending       integer NOT NULL DEFAULT 0,
    failed        boolean NOT NULL DEFAULT false,
    hold_until_ms bigint,
    PRIMARY KEY (app, id)
);
CREATE INDEX events_by_type ON events (app, event_type, id);
CREATE INDEX events_by_data_id ON events (app, data_id, id) WHERE data_id IS NOT NULL;
-- Retention removes events by age, across applications: ids carry their time.
CREATE INDEX events_by_id ON events (id);
-- The events not delivered everywhere (something pending, or failed for good somewhere),
-- for ?delivery_success=false.
CREATE INDEX events_undelivered ON events (app, id) WHERE pending > 0 OR failed;

-- Delivery attempts: each try of a delivery (an event to an endpoint) is a row; the next
-- try exists, pending, from the moment it is scheduled. Status: 0 pending, 1 succeeded,
-- 2 retrying, 3 failed (AttemptStatus::as_u8).
CREATE TABLE attempts (
    id              uuid PRIMARY KEY,
    app             uuid NOT NULL,
    endpoint        uuid NOT NULL,
    event           uuid NOT NULL,
    mode            smallint NOT NULL,
    event_type      text NOT NULL,
    attempt         integer NOT NULL,
    status          smallint NOT NULL,
    response_status integer,
    response_body   text,
    error           text,
    duration_ms     bigint,
    created         bigint NOT NULL,
    next_retry_at   bigint,
    due_ms          bigint NOT NULL,
    request_headers jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX attempts_by_endpoint ON attempts (app, endpoint, id);
CREATE INDEX attempts_by_endpoint_status ON attempts (app, endpoint, status, id);
CREATE INDEX attempts_by_event ON attempts (event, id);
CREATE INDEX attempts_failed ON attempts (app, id) WHERE status IN (2, 3);

-- Attempt outcomes per minute, for statistics: outcome 0 succeeded, 1 failed.
CREATE TABLE delivery_stats (
    app      uuid NOT NULL,
    minute   bigint NOT NULL,
    endpoint uuid NOT NULL,
    outcome  smallint NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (app, minute, endpoint, outcome)
);
CREATE INDEX delivery_stats_by_minute ON delivery_stats (minute);

-- The delivery queue: every pending attempt, due at `due_ms`, or parked (its endpoint is
-- disabled). A process that claims an entry holds it until `locked_until_ms`; an entry
-- stays until its attempt's outcome is committed, so a process that dies mid-attempt
-- leaves it for another once the lease runs out.
CREATE TABLE queue (
    attempt         uuid PRIMARY KEY,
    app             uuid NOT NULL,
    endpoint        uuid NOT NULL,
    due_ms          bigint NOT NULL,
    parked          boolean NOT NULL DEFAULT false,
    locked_until_ms bigint
);
CREATE INDEX queue_due ON queue (due_ms, attempt) WHERE NOT parked;
CREATE INDEX queue_by_endpoint ON queue (endpoint, attempt);

-- Verification sessions; `expires_ms` while one may still expire.
CREATE TABLE sessions (
    app        uuid NOT NULL,
    id         uuid NOT NULL,
    record     jsonb NOT NULL,
    expires_ms bigint,
    PRIMARY KEY (app, id)
);
CREATE INDEX sessions_expiry ON sessions (expires_ms, id) WHERE expires_ms IS NOT NULL;

-- App portal sessions by the SHA-256 of the token.
CREATE TABLE portal_sessions (
    hash       bytea PRIMARY KEY,
    app        uuid NOT NULL,
    id         uuid NOT NULL,
    expires_at bigint NOT NULL,
    record     jsonb NOT NULL
);
CREATE INDEX portal_sessions_by_app ON portal_sessions (app, id);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

-- Event types created through the API.
CREATE TABLE event_types (
    mode   smallint NOT NULL,
    name   text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (mode, name)
);
