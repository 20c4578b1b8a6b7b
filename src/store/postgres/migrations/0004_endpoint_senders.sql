-- Flow control across processes: the one process that sends to an endpoint while its
-- lease lasts (its store's token; `until_ms` in the database's clock, renewed every third
-- of the claim lease while it has the endpoint's attempts), so the endpoint's in-flight
-- cap, rate and pause are kept in one place. The other processes hand it the endpoint's
-- due attempts (`queue.reserved_for`). A process that dies keeps its endpoints until
-- their leases run out; then another takes them.
CREATE TABLE endpoint_senders (
    endpoint uuid PRIMARY KEY,
    sender   text NOT NULL,
    until_ms bigint NOT NULL
);
