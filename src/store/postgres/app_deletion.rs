//! Deleting applications on Postgres: gone from the API at once, their rows purged later
//! a batch at a time.

use tokio_postgres::types::Json;

use crate::ids::{AppId, EndpointId};
use crate::mode::Mode;
use crate::store::backend::AppDeletions;
use crate::store::model::{AppDeletion, AppPurge, AppRecord, StoreError};
use crate::store::rules::cancel::end_pending;

use super::attempts::Writes;
use super::cached::Cached;
use super::listeners::forget_all_listeners;
use super::scheduling::Ending;
use super::{PgStore, id_of, uuid};

/// Why a deleted application's pending deliveries ended.
const ENDED_BY: &str = "application deleted";

/// The history tables a deleted application's rows are purged from, in order, each with
/// the statement that removes up to `$2` rows of application `$1`.
const PURGES: &[&str] = &[
    "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE app = $1 LIMIT $2)",
    "DELETE FROM events WHERE (app, id) IN (SELECT app, id FROM events WHERE app = $1 LIMIT $2)",
    "DELETE FROM skipped_deliveries WHERE (event, endpoint) IN
         (SELECT event, endpoint FROM skipped_deliveries WHERE app = $1 LIMIT $2)",
    "DELETE FROM sessions WHERE (app, id) IN (SELECT app, id FROM sessions WHERE app = $1 LIMIT $2)",
    "DELETE FROM delivery_stats WHERE (app, minute, endpoint, outcome) IN
         (SELECT app, minute, endpoint, outcome FROM delivery_stats WHERE app = $1 LIMIT $2)",
    "DELETE FROM idempotency WHERE (app, key) IN (SELECT app, key FROM idempotency WHERE app = $1 LIMIT $2)",
];

impl AppDeletions for PgStore {
    /// Removes up to `limit` rows of deleted applications' history, in one transaction;
    /// forgets a deleted application once nothing is left of it and it was deleted before
    /// `settled_before_ms`.
    async fn purge_deleted_apps(&self, limit: usize, settled_before_ms: u64) -> Result<AppPurge, StoreError> {
        transaction!(self, |tx| {
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
        })
        .await
    }

    /// Deletes an application of `mode` (not the default one): it and its endpoints go
    /// now, their pending deliveries end, its keys, portal sessions and listeners go; its
    /// history is purged afterwards in batches.
    async fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError> {
        transaction!(self, |tx| {
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
                let mut ending = Ending { client: tx, writes: &mut writes };
                deliveries_ended += end_pending(&mut ending, *endpoint, ENDED_BY, (now_ms / 1000) as i64).await?;
            }
            writes.flush(tx).await?;
            let keys_revoked =
                tx.exec("DELETE FROM api_keys WHERE record->>'app' = $1", &[&id.to_string()]).await? as usize;
            tx.exec("DELETE FROM portal_sessions WHERE app = $1", &[&app]).await?;
            tx.exec("DELETE FROM replay_deliveries WHERE replay IN (SELECT id FROM replays WHERE app = $1)", &[&app])
                .await?;
            tx.exec("DELETE FROM replays WHERE app = $1", &[&app]).await?;
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
        })
        .await
    }
}
