//! `stile listen` on Postgres: each CLI's endpoint, and which process holds its connection.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;

use crate::ids::{AppId, EndpointId};
use crate::store::backend::Listeners;
use crate::store::model::{EndpointRecord, ListenRequest, Owner, StoreError};

use super::cached::Cached;
use super::endpoints::{Lock, get_in, put_in};
use super::{DB_NOW_MS, PgStore, id_of, uuid};

/// The process other than `me` holding listener endpoint `id`'s CLI connection, if one
/// does and its hold has not run out.
pub(super) async fn listener_holder(
    client: &impl GenericClient,
    id: EndpointId,
    me: &str,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT holder FROM listeners
         WHERE endpoint = $1 AND holder IS NOT NULL AND holder <> $2 AND held_until_ms >= {DB_NOW_MS}"
    );
    let row = client.q_opt(&sql, &[&uuid(id.as_u128()), &me]).await?;
    Ok(row.map(|row| row.get(0)))
}

/// Forgets every listener entry of `app` (it is being deleted); returns their endpoints.
pub(super) async fn forget_all_listeners(
    client: &impl deadpool_postgres::GenericClient,
    app: AppId,
) -> Result<Vec<EndpointId>, StoreError> {
    let rows = client.q("DELETE FROM listeners WHERE app = $1 RETURNING endpoint", &[&uuid(app.as_u128())]).await?;
    Ok(rows.iter().map(|row| EndpointId(id_of(row.get(0)))).collect())
}

impl Listeners for PgStore {
    /// The listener endpoint of the key with hash `key_hash` in `owner`'s application,
    /// updated to `request`; `make` builds a new one when there is none yet. The answer
    /// says whether it was made now. Two connections of one key take turns (an advisory
    /// lock on the key), so they share one endpoint.
    async fn listener_endpoint(
        &self,
        owner: Owner,
        key_hash: [u8; 32],
        request: ListenRequest,
        make: impl FnOnce() -> EndpointRecord + Send + 'static,
    ) -> Result<(EndpointRecord, bool), StoreError> {
        let app = uuid(owner.app.as_u128());
        let lock = i64::from_be_bytes(key_hash[..8].try_into().expect("32 bytes")) ^ (owner.app.as_u128() as i64);
        transaction_once!(self, |tx| {
            tx.exec("SELECT pg_advisory_xact_lock($1)", &[&lock]).await?;
            let known = tx
                .q_opt("SELECT endpoint FROM listeners WHERE app = $1 AND key_hash = $2", &[&app, &key_hash.as_slice()])
                .await?
                .map(|row| EndpointId(id_of(row.get(0))));
            let existing = match known {
                Some(id) => get_in(tx, owner.app, id, Lock::Change).await?,
                None => None,
            };
            let (mut record, made) = match &existing {
                Some(record) => (record.clone(), false),
                None => (make(), true),
            };
            request.apply_to(&mut record, &key_hash);
            put_in(tx, existing.as_ref(), &record).await?;
            tx.exec(
                "INSERT INTO listeners (app, key_hash, endpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (app, key_hash) DO UPDATE SET endpoint = excluded.endpoint",
                &[&app, &key_hash.as_slice(), &uuid(record.id.as_u128())],
            )
            .await?;
            Ok((record, made))
        })
        .await
    }

    async fn touch_listener(&self, owner: Owner, id: EndpointId, now: i64) -> Result<(), StoreError> {
        transaction!(self, |tx| {
            let Some(mut record) = get_in(tx, owner.app, id, Lock::Change).await? else { return Ok(()) };
            if let Some(listener) = &mut record.listener {
                listener.last_seen = now;
                let before = record.clone();
                put_in(tx, Some(&before), &record).await?;
            }
            Ok(())
        })
        .await
    }

    async fn idle_listeners(&self, cutoff: i64) -> Result<Vec<(Owner, EndpointId)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .q(
                &format!(
                    "SELECT e.record FROM listeners l JOIN endpoints e ON e.app = l.app AND e.id = l.endpoint
                     WHERE (e.record->'listener'->>'last_seen')::bigint < $1
                         AND (l.held_until_ms IS NULL OR l.held_until_ms < {DB_NOW_MS})"
                ),
                &[&cutoff],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let record = row.get::<_, Json<EndpointRecord>>(0).0;
                (record.owner(), record.id)
            })
            .collect())
    }
}
