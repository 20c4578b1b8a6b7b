//! The queue on Postgres, which many processes share. [`PgStore::due_entries`] claims
//! entries rather than reading them: it takes the earliest unclaimed ones (`FOR UPDATE
//! SKIP LOCKED`) and marks them held until a lease runs out (`locked_until_ms`, in the
//! database's clock), so each attempt is made by one process at a time; a process that
//! dies leaves its claims to expire, and another process takes them. Every write that
//! puts an entry (back) on the queue clears its claim.

use std::time::Duration;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::model::{DueEntry, QueueKey, StoreError};

use super::cached::Cached;
use super::scheduling::DB_NOW_MS;
use super::{PgStore, id_of, uuid};

impl PgStore {
    #[cfg(test)]
    /// Removes a queue entry behind the engine's back.
    pub(crate) fn drop_queue_entry_for_test(&self, key: crate::store::model::queue::QueueKey) {
        let id = uuid(key.attempt().as_u128());
        self.run(async {
            self.client().await?.exec("DELETE FROM queue WHERE attempt = $1", &[&id]).await?;
            Ok(())
        })
        .unwrap();
    }
}

impl PgStore {
    /// Claims up to `limit` queue entries due by `until_ms` that no process holds, for
    /// the claim lease. `after` (a scan position, for redb) plays no part: what this
    /// process holds is not offered again until its lease runs out.
    pub fn due_entries(
        &self,
        _after: Option<QueueKey>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let lease = self.claim_lease.as_millis() as i64;
        self.run(async {
            let client = self.client().await?;
            let sql = format!(
                "WITH c AS MATERIALIZED (
                     SELECT attempt FROM queue
                     WHERE NOT parked AND due_ms <= $1
                         AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS} OR reserved_for = $4)
                     ORDER BY due_ms, attempt LIMIT $2 FOR UPDATE SKIP LOCKED)
                 UPDATE queue q SET locked_until_ms = {DB_NOW_MS} + $3, reserved_for = NULL
                 FROM c WHERE q.attempt = c.attempt
                 RETURNING q.due_ms, q.attempt, q.app, q.endpoint"
            );
            let rows = client.q(&sql, &[&(until_ms as i64), &(limit as i64), &lease, &self.token]).await?;
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
        })
    }

    /// How often the scheduler renews its claims: a third of the lease.
    pub fn claim_renewal(&self) -> Duration {
        self.claim_lease / 3
    }

    /// Extends this process's claims on the entries it still holds, and its hold on the
    /// listener endpoints whose CLI it still has (see [`PgStore::hold_listener`]).
    pub fn renew_claims(&self, held: &[DeliveryId], listening: &[EndpointId]) -> Result<(), StoreError> {
        if held.is_empty() && listening.is_empty() {
            return Ok(());
        }
        let lease = self.claim_lease.as_millis() as i64;
        let entries: Vec<uuid::Uuid> = held.iter().map(|id| uuid(id.as_u128())).collect();
        let endpoints: Vec<uuid::Uuid> = listening.iter().map(|id| uuid(id.as_u128())).collect();
        self.run(async {
            let client = self.client().await?;
            if !entries.is_empty() {
                let sql = format!(
                    "UPDATE queue SET locked_until_ms = {DB_NOW_MS} + $2
                     WHERE attempt = ANY($1) AND locked_until_ms IS NOT NULL"
                );
                client.exec(&sql, &[&entries, &lease]).await?;
            }
            if !endpoints.is_empty() {
                let sql = format!(
                    "UPDATE listeners SET held_until_ms = {DB_NOW_MS} + $3 WHERE endpoint = ANY($1) AND holder = $2"
                );
                client.exec(&sql, &[&endpoints, &self.token, &lease]).await?;
            }
            Ok(())
        })
    }

    /// Gives up this process's claims on entries it will not make now, so any process
    /// (this one included) may claim them again at once.
    pub fn release_claims(&self, entries: &[DeliveryId]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = entries.iter().map(|id| uuid(id.as_u128())).collect();
        self.run(async {
            let client = self.client().await?;
            client.exec("UPDATE queue SET locked_until_ms = NULL WHERE attempt = ANY($1)", &[&ids]).await?;
            Ok(())
        })
    }

    /// When the first unclaimed queue entry is due, if any.
    pub fn next_due_after(&self, _after: Option<QueueKey>) -> Result<Option<u64>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let sql = format!(
                "SELECT min(due_ms) FROM queue
                 WHERE NOT parked AND (locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS} OR reserved_for = $1)"
            );
            let due: Option<i64> = client.q_one(&sql, &[&self.token]).await?.get(0);
            Ok(due.map(|d| d as u64))
        })
    }

    /// How many attempts are queued (pending and not parked).
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let n: i64 = client.q_one("SELECT count(*) FROM queue WHERE NOT parked", &[]).await?.get(0);
            Ok(n as u64)
        })
    }
}
