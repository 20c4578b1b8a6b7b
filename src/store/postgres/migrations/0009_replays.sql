-- Replays: a query whose matched deliveries are sent again in the background, the record
-- as JSON (`ReplayRecord`); `watching` while it runs or its outcomes may still change.
CREATE TABLE replays (
    app      uuid NOT NULL,
    id       uuid NOT NULL,
    watching boolean NOT NULL,
    record   jsonb NOT NULL,
    PRIMARY KEY (app, id)
);
CREATE INDEX replays_watched ON replays (id) WHERE watching;

-- The deliveries each watched replay queued again, so its outcomes can be counted;
-- removed when the replay is no longer watched.
CREATE TABLE replay_deliveries (
    replay   uuid NOT NULL,
    event    uuid NOT NULL,
    endpoint uuid NOT NULL,
    PRIMARY KEY (replay, event, endpoint)
);

-- Deliveries skipped because their endpoint was disabled when the event was published,
-- replayable until `until_ms` (the endpoint's undelivered-payload window); removed with
-- the event.
CREATE TABLE skipped_deliveries (
    app      uuid NOT NULL,
    event    uuid NOT NULL,
    endpoint uuid NOT NULL,
    until_ms bigint NOT NULL,
    PRIMARY KEY (event, endpoint)
);
CREATE INDEX skipped_deliveries_by_app ON skipped_deliveries (app);
