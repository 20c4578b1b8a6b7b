-- Each endpoint's flow as its sender sees it, written with every renewal of the
-- sendership (and soon after a refusal pauses the endpoint), so every process can show
-- it (`GET /v1/webhook_endpoints/:id/flow`, the dashboard), and a process taking over
-- from a sender that died keeps the pause it had set. `held` is what holds the first
-- waiting delivery (`paused`, `rate_limit`, `max_in_flight`) or NULL; `as_of_ms` is when
-- the sender saw it.
ALTER TABLE endpoint_senders
    ADD COLUMN paused_until_ms bigint,
    ADD COLUMN held            text,
    ADD COLUMN waiting         integer NOT NULL DEFAULT 0,
    ADD COLUMN in_flight       integer NOT NULL DEFAULT 0,
    ADD COLUMN recovering_rate double precision,
    ADD COLUMN as_of_ms        bigint;
