//! Deleting applications, recovering an endpoint's failed deliveries, retention, and the
//! figures the dashboard and `/metrics` read, on Postgres.

use tokio_postgres::types::Json;

use super::cached::Cached;
use super::deliveries::{ATTEMPT_COLUMNS, Writes, attempt_of, status_code};
use super::endpoints::{Lock, get_in};
use super::scheduling::{DB_NOW_MS, cancel_endpoint};
use super::sessions::forget_all_listeners;
use super::{PgStore, id_of, uuid};
use crate::ids::{AppId, EndpointId, EventId, first_id_at};
use crate::mode::Mode;
use crate::store::model::attempts::undelivered_expired;
use crate::store::model::upkeep::{MAX_PENDING_COUNTED, MAX_RECOVER, Outcomes};
use crate::store::model::{
    AppDeletion, AppPurge, AppRecord, AttemptStatus, Cutoffs, DeliveryStats, MetricsSnapshot, Owner, PruneCursor,
    Pruned, Recovery, StoreError,
};

/// Why a deleted application's pending deliveries ended.
const ENDED_BY: &str = "application deleted";

/// The history tables a deleted application's rows are purged from, in order, each with
/// the statement that removes up to `$2` rows of application `$1`.
const PURGES: &[&str] = &[
    "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE app = $1 LIMIT $2)",
    "DELETE FROM events WHERE (app, id) IN (SELECT app, id FROM events WHERE app = $1 LIMIT $2)",
    "DELETE FROM sessions WHERE (app, id) IN (SELECT app, id FROM sessions WHERE app = $1 LIMIT $2)",
    "DELETE FROM delivery_stats WHERE (app, minute, endpoint, outcome) IN
         (SELECT app, minute, endpoint, outcome FROM delivery_stats WHERE app = $1 LIMIT $2)",
    "DELETE FROM idempotency WHERE (app, key) IN (SELECT app, key FROM idempotency WHERE app = $1 LIMIT $2)",
];

impl PgStore {
    /// Deletes an application of `mode` (not the default one): it and its endpoints go
    /// now, their pending deliveries end, its keys, portal sessions and listeners go; its
    /// history is purged afterwards in batches.
    pub(in crate::store) fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError> {
        self.run(self.transaction(async |tx| {
            let app = uuid(id.as_u128());
            let row = tx
                .q_opt(
                    "SELECT record FROM apps WHERE id = $1 AND mode = $2 FOR UPDATE",
                    &[&app, &i16::from(mode.as_u8())],
                )
                .await?;
            let Some(row) = row else { return Ok(AppDeletion::NotFound) };
            let record = row.get::<_, Json<AppRecord>>(0).0;
            if record.default {
                return Ok(AppDeletion::IsDefault);
            }
            tx.exec("DELETE FROM apps WHERE id = $1", &[&app]).await?;
            let endpoints: Vec<EndpointId> = tx
                .q("DELETE FROM endpoints WHERE app = $1 RETURNING id", &[&app])
                .await?
                .iter()
                .map(|row| EndpointId(id_of(row.get(0))))
                .collect();
            tx.exec("DELETE FROM endpoint_labels WHERE app = $1", &[&app]).await?;
            tx.exec("DELETE FROM endpoint_subscriptions WHERE app = $1", &[&app]).await?;
            let ids: Vec<uuid::Uuid> = endpoints.iter().map(|e| uuid(e.as_u128())).collect();
            tx.exec("DELETE FROM endpoint_health WHERE endpoint = ANY($1)", &[&ids]).await?;
            let mut writes = Writes::new(&self.token);
            let mut deliveries_ended = 0;
            for endpoint in &endpoints {
                deliveries_ended +=
                    cancel_endpoint(tx, &mut writes, *endpoint, ENDED_BY, (now_ms / 1000) as i64).await?;
            }
            writes.flush(tx).await?;
            let keys_revoked =
                tx.exec("DELETE FROM api_keys WHERE record->>'app' = $1", &[&id.to_string()]).await? as usize;
            tx.exec("DELETE FROM portal_sessions WHERE app = $1", &[&app]).await?;
            let listeners = forget_all_listeners(tx, id).await?;
            tx.exec(
                "INSERT INTO deleted_apps (app, deleted_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&app, &(now_ms as i64)],
            )
            .await?;
            Ok(AppDeletion::Deleted {
                app: Box::new(record),
                endpoints: endpoints.len(),
                deliveries_ended,
                keys_revoked,
                listeners,
            })
        }))
    }

    /// Removes up to `limit` rows of deleted applications' history, in one transaction;
    /// forgets a deleted application once nothing is left of it and it was deleted before
    /// `settled_before_ms`.
    pub fn purge_deleted_apps(&self, limit: usize, settled_before_ms: u64) -> Result<AppPurge, StoreError> {
        self.run(self.transaction(async |tx| {
            let deleted = tx.q("SELECT app, deleted_ms FROM deleted_apps ORDER BY app", &[]).await?;
            let mut purge = AppPurge::default();
            for row in &deleted {
                let (app, deleted_ms): (uuid::Uuid, i64) = (row.get(0), row.get(1));
                let mut removed = 0;
                for sql in PURGES {
                    let budget = (limit - purge.removed - removed) as i64;
                    if budget == 0 {
                        break;
                    }
                    removed += tx.exec(sql, &[&app, &budget]).await? as usize;
                }
                purge.removed += removed;
                if removed == 0 && (deleted_ms as u64) < settled_before_ms {
                    tx.exec("DELETE FROM deleted_apps WHERE app = $1", &[&app]).await?;
                    purge.finished += 1;
                }
                if purge.removed >= limit {
                    purge.more = true;
                    break;
                }
            }
            Ok(purge)
        }))
    }

    /// Resends to an endpoint every event whose latest attempt to it, among attempts made
    /// since `since`, failed for good, unless that was longer ago than the endpoint keeps
    /// undelivered payloads. `dry_run` only counts. `None`: no such endpoint.
    pub(in crate::store) fn recover_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Option<Recovery>, StoreError> {
        self.run(self.transaction(async |tx| {
            let Some(endpoint) = get_in(tx, owner.app, id, Lock::KeyShare).await? else { return Ok(None) };
            let hours = endpoint.undelivered_retention_hours.unwrap_or(default_hours);
            let start = uuid(first_id_at((since.max(0) as u64).saturating_mul(1000)));
            // The latest attempt per event since `since`, in the order the events were
            // first attempted, of events that still exist.
            let rows = tx
                .q(
                    "SELECT l.event, l.event_type, l.status, l.created FROM (
                         SELECT DISTINCT ON (a.event) a.event, a.event_type, a.status, a.created,
                             first_value(a.id) OVER (PARTITION BY a.event ORDER BY a.id) AS first
                         FROM attempts a WHERE a.app = $1 AND a.endpoint = $2 AND a.id >= $3
                         ORDER BY a.event, a.id DESC) l
                     JOIN events e ON e.app = $1 AND e.id = l.event
                     WHERE l.status = $4 ORDER BY l.first",
                    &[&uuid(owner.app.as_u128()), &uuid(id.as_u128()), &start, &status_code(AttemptStatus::Failed)],
                )
                .await?;
            let mut failed = Vec::new();
            let mut recovery = Recovery::default();
            for row in &rows {
                if undelivered_expired(AttemptStatus::Failed, row.get(3), hours, now_ms) {
                    recovery.expired += 1;
                    continue;
                }
                if failed.len() == MAX_RECOVER {
                    recovery.has_more = true;
                    break;
                }
                failed.push((EventId(id_of(row.get(0))), row.get::<_, String>(1)));
            }
            recovery.events = failed.len();
            if dry_run || failed.is_empty() {
                return Ok(Some(recovery));
            }
            let mut writes = Writes::new(&self.token);
            for (event, event_type) in &failed {
                writes.schedule(&endpoint, *event, event_type, 1, now_ms, &mut recovery.scheduled);
                writes.add_pending(owner.app, *event, 1);
            }
            writes.flush(tx).await?;
            Ok(Some(recovery))
        }))
    }

    /// Removes up to `limit` old rows from each history table, in one transaction. What
    /// is still in use stays: events with deliveries not final or a held payload, pending
    /// attempts, open sessions. `cursor` plays no part: each statement skips what stays.
    pub fn prune(&self, cutoffs: Cutoffs, _cursor: &mut PruneCursor, limit: usize) -> Result<Pruned, StoreError> {
        let limit = limit as i64;
        let end = uuid(first_id_at(cutoffs.history_ms));
        let now_ms = cutoffs.now_ms as i64;
        let minute = (cutoffs.history_ms / 60_000) as i64;
        let full = |n: u64| n as i64 >= limit;
        self.run(self.transaction(async |tx| {
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
            Ok(pruned)
        }))
    }

    /// What `/metrics` reads from the store.
    pub fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let sql = format!(
                "SELECT count(*), min(due_ms),
                     min(due_ms) FILTER (WHERE locked_until_ms IS NULL OR locked_until_ms < {DB_NOW_MS})
                 FROM queue WHERE NOT parked"
            );
            let queue = client.q_one(&sql, &[]).await?;
            let oldest: Option<i64> = queue.get(1);
            let unclaimed: Option<i64> = queue.get(2);
            let endpoints = client
                .q_one(
                    "SELECT count(*) FILTER (WHERE e.record->>'status' = 'disabled'),
                            count(*) FILTER (WHERE e.record->>'status' <> 'disabled' AND h.endpoint IS NOT NULL),
                            count(*) FILTER (WHERE e.record->>'status' <> 'disabled' AND h.endpoint IS NULL)
                     FROM endpoints e LEFT JOIN endpoint_health h ON h.endpoint = e.id",
                    &[],
                )
                .await?;
            let size = client.q_one("SELECT pg_database_size(current_database())", &[]).await?;
            Ok(MetricsSnapshot {
                queue_depth: queue.get::<_, i64>(0) as u64,
                oldest_due_ms: oldest.map_or(0, |due| now_ms.saturating_sub(due as u64)),
                disabled_endpoints: endpoints.get::<_, i64>(0) as u64,
                degraded_endpoints: endpoints.get::<_, i64>(1) as u64,
                healthy_endpoints: endpoints.get::<_, i64>(2) as u64,
                store_bytes: size.get::<_, i64>(0) as u64,
                claim_lag_ms: unclaimed.map_or(0, |due| now_ms.saturating_sub(due as u64)),
            })
        })
    }

    /// Attempt outcomes of an application from `since` to `until` in buckets of
    /// `bucket_seconds`, pending counts of its endpoints, and its newest failed attempts.
    pub fn delivery_stats(
        &self,
        owner: Owner,
        since: i64,
        until: i64,
        bucket_seconds: i64,
        failures: usize,
    ) -> Result<DeliveryStats, StoreError> {
        let app = uuid(owner.app.as_u128());
        self.run(async {
            let client = self.client().await?;
            let mut out = DeliveryStats::default();
            let rows = client
                .q(
                    "SELECT minute, endpoint, outcome, count FROM delivery_stats
                     WHERE app = $1 AND minute >= $2 AND minute <= $3",
                    &[&app, &(since.max(0) / 60), &(until.max(0) / 60)],
                )
                .await?;
            for row in &rows {
                let at = row.get::<_, i64>(0) * 60;
                let bucket = at.div_euclid(bucket_seconds) * bucket_seconds;
                let n = row.get::<_, i64>(3) as u64;
                let add = |o: &mut Outcomes| match row.get::<_, i16>(2) {
                    0 => o.succeeded += n,
                    _ => o.failed += n,
                };
                add(out.buckets.entry(bucket).or_default());
                add(out.endpoints.entry(EndpointId(id_of(row.get(1)))).or_default());
            }
            let rows = client
                .q(
                    "SELECT e.id, (SELECT count(*) FROM (SELECT 1 FROM queue q WHERE q.endpoint = e.id LIMIT $2) c)
                     FROM endpoints e WHERE e.app = $1",
                    &[&app, &(MAX_PENDING_COUNTED as i64)],
                )
                .await?;
            for row in &rows {
                out.pending.insert(EndpointId(id_of(row.get(0))), row.get::<_, i64>(1) as u64);
            }
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE app = $1 AND status IN (2, 3) ORDER BY id DESC LIMIT $2"
            );
            for row in &client.q(&sql, &[&app, &(failures as i64)]).await? {
                out.recent_failures.push(self.opened(attempt_of(row)?)?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
impl PgStore {
    /// Overwrites an attempt's response excerpt with raw text (`None`: removes the
    /// attempt), as damage would, for tests of bad records.
    pub(crate) fn put_raw_attempt_for_test(&self, id: crate::ids::DeliveryId, bytes: Option<&[u8]>) {
        let id = uuid(id.as_u128());
        self.run(async {
            let client = self.client().await?;
            match bytes {
                Some(bytes) => {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    client.exec("UPDATE attempts SET response_body = $2 WHERE id = $1", &[&id, &text]).await?
                }
                None => client.exec("DELETE FROM attempts WHERE id = $1", &[&id]).await?,
            };
            Ok(())
        })
        .unwrap();
    }

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
