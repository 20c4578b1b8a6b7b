-- The W3C trace each event was published in (trace id, the publish span, flags, then
-- the tracestate: `EventTrace::to_bytes`); NULL for events published before, and by a
-- process of an earlier release still running beside a newer one.
ALTER TABLE events ADD COLUMN trace bytea;
