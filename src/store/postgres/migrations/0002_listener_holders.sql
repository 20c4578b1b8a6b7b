-- `stile listen` across processes: the process holding a listener endpoint's CLI
-- connection (its store's token) while it lives (`held_until_ms`, renewed every third of
-- the claim lease), and queue entries handed to that process by the others.
ALTER TABLE listeners ADD COLUMN holder text;
ALTER TABLE listeners ADD COLUMN held_until_ms bigint;
CREATE INDEX listeners_by_endpoint ON listeners (endpoint);
-- An entry reserved for a process: only that process claims it until `locked_until_ms`,
-- then anyone (the process died: the entry is parked again by whoever claims it).
ALTER TABLE queue ADD COLUMN reserved_for text;
