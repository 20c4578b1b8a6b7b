//! Retention on Postgres: removing history older than its cutoffs, a batch at a time.

use crate::ids::first_id_at;
use crate::store::backend::Retention;
use crate::store::model::{Cutoffs, PruneCursor, Pruned, StoreError};

use super::cached::Cached;
use super::{DB_NOW_MS, PgStore, uuid};

impl Retention for PgStore {
    /// Removes up to `limit` old rows from each history table, in one transaction. What
    /// is still in use stays: events with deliveries not final or a held payload, pending
    /// attempts, open sessions. `cursor` plays no part: each statement skips what stays.
    async fn prune(
        &self,
        cutoffs: Cutoffs,
        cursor: PruneCursor,
        limit: usize,
    ) -> Result<(Pruned, PruneCursor), StoreError> {
        let limit = limit as i64;
        let end = uuid(first_id_at(cutoffs.history_ms));
        let now_ms = cutoffs.now_ms as i64;
        let minute = (cutoffs.history_ms / 60_000) as i64;
        let full = |n: u64| n as i64 >= limit;
        let pruned = transaction!(self, |tx| {
            let mut pruned = Pruned::default();
            let n = tx
                .exec(
                    "DELETE FROM attempts WHERE id IN
                         (SELECT id FROM attempts WHERE id < $1 AND status <> 0 ORDER BY id LIMIT $2)",
                    &[&end, &limit],
                )
                .await?;
            (pruned.attempts, pruned.more) = (n as usize, pruned.more | full(n));
            let gone = tx
                .q(
                    "DELETE FROM events WHERE (app, id) IN
                         (SELECT app, id FROM events WHERE id < $1 AND pending = 0
                              AND (hold_until_ms IS NULL OR hold_until_ms <= $3) LIMIT $2)
                     RETURNING id",
                    &[&end, &limit, &now_ms],
                )
                .await?;
            let n = gone.len() as u64;
            (pruned.events, pruned.more) = (n as usize, pruned.more | full(n));
            // Their attempts (all final) go with them, however recently they were made.
            let gone: Vec<uuid::Uuid> = gone.iter().map(|row| row.get(0)).collect();
            if !gone.is_empty() {
                pruned.attempts += tx.exec("DELETE FROM attempts WHERE event = ANY($1)", &[&gone]).await? as usize;
                tx.exec("DELETE FROM skipped_deliveries WHERE event = ANY($1)", &[&gone]).await?;
            }
            let n = tx
                .exec(
                    "DELETE FROM sessions WHERE (app, id) IN
                         (SELECT app, id FROM sessions WHERE id < $1
                              AND record->>'status' NOT IN ('requires_input', 'processing') LIMIT $2)",
                    &[&end, &limit],
                )
                .await?;
            (pruned.sessions, pruned.more) = (n as usize, pruned.more | full(n));
            let n = tx
                .exec(
                    "DELETE FROM delivery_stats WHERE (app, minute, endpoint, outcome) IN
                         (SELECT app, minute, endpoint, outcome FROM delivery_stats WHERE minute < $1 LIMIT $2)",
                    &[&minute, &limit],
                )
                .await?;
            (pruned.stats, pruned.more) = (n as usize, pruned.more | full(n));
            let n = tx
                .exec(
                    "DELETE FROM portal_sessions WHERE hash IN
                         (SELECT hash FROM portal_sessions WHERE expires_at <= $1 LIMIT $2)",
                    &[&(now_ms / 1000), &limit],
                )
                .await?;
            (pruned.portal_sessions, pruned.more) = (n as usize, pruned.more | full(n));
            let n = tx
                .exec(
                    "DELETE FROM idempotency WHERE (app, key) IN
                         (SELECT app, key FROM idempotency WHERE created < $1 LIMIT $2)",
                    &[&cutoffs.idempotency_secs, &limit],
                )
                .await?;
            (pruned.idempotency, pruned.more) = (n as usize, pruned.more | full(n));
            // Senderships that ran out: taken afresh when their endpoint has attempts
            // again, and gone for endpoints that were deleted. Kept while entries are
            // still set aside for their senders (each process's renewal gives those back
            // to everyone: `cluster::release_lapsed_reservations`).
            let sql = format!(
                "DELETE FROM endpoint_senders WHERE endpoint IN
                     (SELECT s.endpoint FROM endpoint_senders s WHERE s.until_ms < {DB_NOW_MS}
                          AND NOT EXISTS (SELECT 1 FROM queue q
                                          WHERE q.reserved_for = s.sender AND q.endpoint = s.endpoint AND NOT q.parked)
                      LIMIT $1)"
            );
            tx.exec(&sql, &[&limit]).await?;
            Ok(pruned)
        })
        .await?;
        Ok((pruned, cursor))
    }
}
