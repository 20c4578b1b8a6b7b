-- Entries reserved for one process (the sender of their endpoint, or the process holding
-- a listener endpoint's CLI) leave the index every process claims from (`queue_due`), so
-- one endpoint's backlog waiting for its sender's flow is not walked by every claim; each
-- process takes its own from `queue_reserved`, endpoint by endpoint. A reservation lasts
-- while its holder's sendership or listener hold does, not by a lease of its own; the
-- release before kept a lease per entry, so its reservations go back to everyone (their
-- claims, if any, still run out as they would have).
UPDATE queue SET reserved_for = NULL WHERE reserved_for IS NOT NULL;
DROP INDEX queue_due;
CREATE INDEX queue_due ON queue (due_ms, attempt) WHERE NOT parked AND reserved_for IS NULL;
CREATE INDEX queue_reserved ON queue (reserved_for, endpoint, due_ms, attempt)
    WHERE reserved_for IS NOT NULL AND NOT parked;
