//! The queue on Postgres, which many processes share. [`PgStore::due_entries`] claims
//! entries rather than reading them: it takes due ones no process holds (`FOR UPDATE
//! SKIP LOCKED`) and marks them held until a lease runs out (`locked_until_ms`, in the
//! database's clock), so each attempt is made by one process at a time; a process that
//! dies leaves its claims to expire, and another process takes them. Every write that
//! puts an entry (back) on the queue clears its claim.
//!
//! Entries are claimed from two places. The shared ones (`reserved_for` null) in due
//! order, through `queue_due`. The ones reserved for this process (it sends to their
//! endpoint, or holds its listener's CLI: `cluster.rs`) endpoint by endpoint through
//! `queue_reserved`, leaving out the endpoints the scheduler holds enough of: an
//! endpoint's backlog that waits for its flow sits there, out of every claim's way. A
//! shared entry of an endpoint this process sends to (or holds the CLI of) is reserved for
//! it as it is claimed, so the entries it holds in memory are out of the others' way too.

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::backend::Queue;
use crate::store::model::{DueEntry, QueueKey, StoreError};

use super::cached::Cached;
use super::{DB_NOW_MS, PgStore, id_of};

/// The most entries of one endpoint a claim takes from those reserved for this process
/// (the scheduler keeps a few thousand per endpoint; more would be claimed only to be set
/// aside again).
const PULL_PER_ENDPOINT: i64 = 1_000;

/// The endpoints with entries reserved for the process named by parameter `me`
/// (`mine(endpoint)`, ending in a null), one index probe each: a loose scan of
/// `queue_reserved`.
fn mine(me: &str) -> String {
    format!(
        "mine(endpoint) AS (
             (SELECT endpoint FROM queue WHERE reserved_for = {me} AND NOT parked ORDER BY endpoint LIMIT 1)
             UNION ALL
             SELECT (SELECT q.endpoint FROM queue q
                     WHERE q.reserved_for = {me} AND NOT q.parked AND q.endpoint > m.endpoint
                     ORDER BY q.endpoint LIMIT 1)
             FROM mine m WHERE m.endpoint IS NOT NULL)"
    )
}

impl Queue for PgStore {
    /// Claims up to `limit` queue entries due by `until_ms` that no process holds, for
    /// the claim lease: first those reserved for this process, of endpoints not in `full`,
    /// then shared ones in due order. `after` (a scan position, for redb) plays no part:
    /// what this process holds is not offered again until its lease runs out.
    async fn due_entries(
        &self,
        _after: Option<QueueKey>,
        until_ms: u64,
        limit: usize,
        full: Vec<EndpointId>,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let lease = self.claim_lease.as_millis() as i64;
        let client = self.client().await?;
        let mine = mine("$4");
        let sql = format!(
            "WITH RECURSIVE {mine},
             pulled AS MATERIALIZED (
                 SELECT r.attempt FROM mine CROSS JOIN LATERAL (
                     SELECT q.attempt FROM queue q
                     WHERE q.reserved_for = $4 AND q.endpoint = mine.endpoint AND NOT q.parked
                         AND q.due_ms <= $1 AND (q.locked_until_ms IS NULL OR q.locked_until_ms < {DB_NOW_MS})
                     ORDER BY q.due_ms, q.attempt LIMIT $6 FOR UPDATE SKIP LOCKED) r
                 WHERE mine.endpoint IS NOT NULL AND NOT (mine.endpoint = ANY($5))
                 LIMIT $2),
             shared AS MATERIALIZED (
                 SELECT attempt FROM queue
                 WHERE NOT parked AND reserved_for IS NULL AND due_ms <= $1
                     AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS})
                 ORDER BY due_ms, attempt LIMIT $2 - (SELECT count(*) FROM pulled) FOR UPDATE SKIP LOCKED)
             UPDATE queue q SET locked_until_ms = {DB_NOW_MS} + $3, reserved_for = coalesce(q.reserved_for,
                 (SELECT s.sender FROM endpoint_senders s
                  WHERE s.endpoint = q.endpoint AND s.sender = $4 AND s.until_ms >= {DB_NOW_MS}),
                 (SELECT l.holder FROM listeners l
                  WHERE l.endpoint = q.endpoint AND l.holder = $4 AND l.held_until_ms >= {DB_NOW_MS}))
             WHERE q.attempt = ANY(ARRAY(SELECT attempt FROM pulled UNION ALL SELECT attempt FROM shared))
             RETURNING q.due_ms, q.attempt, q.app, q.endpoint"
        );
        let full: Vec<uuid::Uuid> = full.iter().map(|id| super::uuid(id.as_u128())).collect();
        let rows = client
            .q(&sql, &[&(until_ms as i64), &(limit as i64), &lease, &self.token, &full, &PULL_PER_ENDPOINT])
            .await?;
        let mut entries: Vec<DueEntry> = rows
            .iter()
            .map(|row| DueEntry {
                key: QueueKey::new(row.get::<_, i64>(0) as u64, DeliveryId(id_of(row.get(1)))),
                app: AppId(id_of(row.get(2))),
                endpoint: EndpointId(id_of(row.get(3))),
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        Ok(entries)
    }

    /// When the first entry this process could claim is due: a shared one, or one
    /// reserved for it of an endpoint not in `full`.
    async fn next_due_after(&self, _after: Option<QueueKey>, full: Vec<EndpointId>) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let mine = mine("$1");
        let sql = format!(
            "WITH RECURSIVE {mine}
             SELECT least(
                 (SELECT min(due_ms) FROM queue
                  WHERE NOT parked AND reserved_for IS NULL
                      AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS})),
                 (SELECT min(r.due_ms) FROM mine CROSS JOIN LATERAL (
                      SELECT q.due_ms FROM queue q
                      WHERE q.reserved_for = $1 AND q.endpoint = mine.endpoint AND NOT q.parked
                          AND (q.locked_until_ms IS NULL OR q.locked_until_ms < {DB_NOW_MS})
                      ORDER BY q.due_ms LIMIT 1) r
                  WHERE mine.endpoint IS NOT NULL AND NOT (mine.endpoint = ANY($2))))"
        );
        let full: Vec<uuid::Uuid> = full.iter().map(|id| super::uuid(id.as_u128())).collect();
        let due: Option<i64> = client.q_one(&sql, &[&self.token, &full]).await?.get(0);
        Ok(due.map(|d| d as u64))
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client.q_one("SELECT count(*) FROM queue WHERE NOT parked", &[]).await?.get(0);
        Ok(n as u64)
    }

    #[cfg(test)]
    async fn drop_queue_entry_for_test(&self, key: QueueKey) -> () {
        let id = super::uuid(key.attempt().as_u128());
        async {
            self.client().await?.exec("DELETE FROM queue WHERE attempt = $1", &[&id]).await?;
            Ok::<_, StoreError>(())
        }
        .await
        .unwrap();
    }
}
