//! The queue on Postgres, which many processes share. [`PgStore::due_entries`] claims
//! entries rather than reading them: it takes the earliest unclaimed ones (`FOR UPDATE
//! SKIP LOCKED`) and marks them held until a lease runs out (`locked_until_ms`, in the
//! database's clock), so each attempt is made by one process at a time; a process that
//! dies leaves its claims to expire, and another process takes them. Every write that
//! puts an entry (back) on the queue clears its claim.

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::backend::Queue;
use crate::store::model::{DueEntry, QueueKey, StoreError};

use super::cached::Cached;
use super::{DB_NOW_MS, PgStore, id_of};

impl Queue for PgStore {
    /// Claims up to `limit` queue entries due by `until_ms` that no process holds, for
    /// the claim lease. `after` (a scan position, for redb) plays no part: what this
    /// process holds is not offered again until its lease runs out.
    async fn due_entries(
        &self,
        _after: Option<QueueKey>,
        until_ms: u64,
        limit: usize,
        full: Vec<EndpointId>,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let lease = self.claim_lease.as_millis() as i64;
        let client = self.client().await?;
        let sql = format!(
            "WITH c AS MATERIALIZED (
                 SELECT attempt FROM queue
                 WHERE NOT parked AND due_ms <= $1
                     AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS} OR reserved_for = $4)
                     AND NOT (endpoint = ANY($5))
                 ORDER BY due_ms, attempt LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE queue q SET locked_until_ms = {DB_NOW_MS} + $3, reserved_for = NULL
             FROM c WHERE q.attempt = c.attempt
             RETURNING q.due_ms, q.attempt, q.app, q.endpoint"
        );
        let full: Vec<uuid::Uuid> = full.iter().map(|id| super::uuid(id.as_u128())).collect();
        let rows = client.q(&sql, &[&(until_ms as i64), &(limit as i64), &lease, &self.token, &full]).await?;
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

    async fn next_due_after(&self, _after: Option<QueueKey>) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT min(due_ms) FROM queue
             WHERE NOT parked AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS} OR reserved_for = $1)"
        );
        let due: Option<i64> = client.q_one(&sql, &[&self.token]).await?.get(0);
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
