//! Listener endpoints: the endpoint each API key gets, per application, for `stile
//! listen`. Found by the key's hash, so the next run of the same key finds the same
//! endpoint (and signing secret); removed when unused for `[listen] idle_expiry`.

use redb::{ReadableTable, WriteTransaction};

use crate::ids::{AppId, EndpointId};
use crate::store::backend::Listeners;
use crate::store::model::{EndpointRecord, ListenRequest, Owner, StoreError};

use super::{RedbStore, encode, endpoints, tables};

/// Forgets the listener entry of one key in `app` (its endpoint is being deleted).
pub(super) fn forget_in(tx: &WriteTransaction, app: AppId, key_hash_hex: &str) -> Result<(), StoreError> {
    let Ok(Ok(hash)) = hex::decode(key_hash_hex).map(<[u8; 32]>::try_from) else { return Ok(()) };
    tx.open_table(tables::LISTENERS)?.remove((app.as_u128(), &hash))?;
    Ok(())
}

/// Forgets every listener entry of `app` (it is being deleted); returns their endpoints.
pub(super) fn forget_all_in(tx: &WriteTransaction, app: AppId) -> Result<Vec<EndpointId>, StoreError> {
    let mut listeners = tx.open_table(tables::LISTENERS)?;
    let app = app.as_u128();
    let rows: Vec<([u8; 32], u128)> = listeners
        .range((app, &[0u8; 32])..=(app, &[0xffu8; 32]))?
        .map(|row| row.map(|(k, v)| (*k.value().1, v.value())))
        .collect::<Result<_, _>>()?;
    for (hash, _) in &rows {
        listeners.remove((app, hash))?;
    }
    Ok(rows.into_iter().map(|(_, endpoint)| EndpointId(endpoint)).collect())
}

impl Listeners for RedbStore {
    /// The listener endpoint of the key with hash `key_hash` in `owner`'s application,
    /// updated to `request` (its URL and event types, and when it was last seen); `make`
    /// builds a new one when there is none yet. The answer says whether it was made now.
    async fn listener_endpoint(
        &self,
        owner: Owner,
        key_hash: [u8; 32],
        request: ListenRequest,
        make: impl FnOnce() -> EndpointRecord + Send + 'static,
    ) -> Result<(EndpointRecord, bool), StoreError> {
        self.write(|tx| {
            let mut listeners = tx.open_table(tables::LISTENERS)?;
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            let known = listeners.get((owner.app.as_u128(), &key_hash))?.map(|v| EndpointId(v.value()));
            let existing = match known {
                Some(id) => endpoints::get_in(&table, owner.app, id)?,
                None => None,
            };
            let (mut record, made) = match &existing {
                Some(record) => (record.clone(), false),
                None => (make(), true),
            };
            request.apply_to(&mut record, &key_hash);
            let bytes = encode(endpoints::TABLE, &record)?;
            table.insert((owner.app.as_u128(), record.id.as_u128()), bytes.as_slice())?;
            endpoints::reindex_in(tx, existing.as_ref(), Some(&record))?;
            listeners.insert((owner.app.as_u128(), &key_hash), record.id.as_u128())?;
            Ok((record, made))
        })
    }

    async fn touch_listener(&self, owner: Owner, id: EndpointId, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            let Some(mut record) = endpoints::get_in(&table, owner.app, id)? else { return Ok(()) };
            if let Some(listener) = &mut record.listener {
                listener.last_seen = now;
                let bytes = encode(endpoints::TABLE, &record)?;
                table.insert((owner.app.as_u128(), id.as_u128()), bytes.as_slice())?;
            }
            Ok(())
        })
    }

    async fn idle_listeners(&self, cutoff: i64) -> Result<Vec<(Owner, EndpointId)>, StoreError> {
        self.read(|tx| {
            let listeners = tx.open_table(tables::LISTENERS)?;
            let table = tx.open_table(tables::ENDPOINTS)?;
            let mut idle = Vec::new();
            for row in listeners.iter()? {
                let (key, id) = row?;
                let (app, id) = (AppId(key.value().0), EndpointId(id.value()));
                if let Some(record) = endpoints::get_in(&table, app, id)?
                    && record.listener.as_ref().is_some_and(|l| l.last_seen < cutoff)
                {
                    idle.push((Owner { app, mode: record.mode }, id));
                }
            }
            Ok(idle)
        })
    }
}
