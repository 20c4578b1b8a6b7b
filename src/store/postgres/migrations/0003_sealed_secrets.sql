-- Endpoint signing secrets are sealed with the payload key (each process seals those it
-- finds in clear at start), and a request with an idempotency key holds the key with a
-- marker row (status 0) while it runs. A process of an earlier release would sign with
-- the sealed text and replay a marker as an answer: this version makes such a process
-- refuse the database ("migrated by a newer stile") instead. No table changes.
COMMENT ON TABLE endpoints IS 'records hold their signing secrets sealed with the payload key';
