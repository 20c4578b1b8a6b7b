//! Listener endpoints: the endpoint each API key gets, per application, for `stile
//! listen`. Found by the key's hash, so the next run of the same key finds the same
//! endpoint (and signing secret); removed when unused for `[listen] idle_expiry`.

use redb::{ReadableTable, WriteTransaction};

use super::apps::Owner;
use super::endpoints::{self, EndpointRecord, ListenerInfo};
use super::{RedbStore, StoreError, encode, tables};
use crate::ids::{AppId, EndpointId};

/// What `stile listen` asked for when it connected.
#[derive(Debug, Clone)]
pub struct ListenRequest {
    /// Where the CLI forwards deliveries (shown as the endpoint's URL).
    pub forward_to: String,
    /// The event types it wants, or `["*"]`.
    pub events: Vec<String>,
    /// When it connected (Unix seconds).
    pub now: i64,
}

/// What a listener endpoint is called: by the first characters of its key's hash, never
/// by characters of the key (a name is shown in the API, the dashboard and the portal).
pub fn listener_name(key_hash: &[u8; 32]) -> String {
    format!("stile listen (key {})", shown_hash(key_hash))
}

/// What a listener endpoint's description says of it.
pub fn listener_description(key_hash: &[u8; 32]) -> String {
    format!("Deliveries for `stile listen` with the API key whose SHA-256 begins {}.", shown_hash(key_hash))
}

fn shown_hash(key_hash: &[u8; 32]) -> String {
    hex::encode(&key_hash[..LISTENER_NAME_HASH_CHARS / 2])
}

/// How many hex characters of the key's SHA-256 name a listener endpoint: enough to tell
/// one developer's from another's, useless to find the key.
const LISTENER_NAME_HASH_CHARS: usize = 8;

/// The name earlier releases gave listener endpoints, which showed characters of the key.
const LEGACY_NAME_START: &str = "stile listen (";

impl ListenRequest {
    /// Brings a listener endpoint up to date with this connection: its URL, event types,
    /// last use, and (for one made by an earlier release, still called by characters of
    /// its key) its name and description. Both backends apply it.
    pub(crate) fn apply_to(&self, record: &mut EndpointRecord, key_hash: &[u8; 32]) {
        record.url = self.forward_to.clone();
        record.enabled_events = self.events.clone();
        record.listener = Some(ListenerInfo { key_hash: hex::encode(key_hash), last_seen: self.now });
        rename_legacy_listener(record);
    }
}

/// Renames a listener endpoint an earlier release called by characters of its key (at
/// start, and when its CLI connects); says whether it did.
pub(crate) fn rename_legacy_listener(record: &mut EndpointRecord) -> bool {
    let legacy = record.name.as_deref().is_some_and(|n| n.starts_with(LEGACY_NAME_START) && n.ends_with("…)"));
    let hash = record.listener.as_ref().and_then(|l| <[u8; 32]>::try_from(hex::decode(&l.key_hash).ok()?).ok());
    let (true, Some(hash)) = (legacy, hash) else { return false };
    record.name = Some(listener_name(&hash));
    record.description = Some(listener_description(&hash));
    true
}

impl RedbStore {
    /// The listener endpoint of the key with hash `key_hash` in `owner`'s application,
    /// updated to `request` (its URL and event types, and when it was last seen); `make`
    /// builds a new one when there is none yet. The answer says whether it was made now.
    pub fn listener_endpoint(
        &self,
        owner: Owner,
        key_hash: &[u8; 32],
        request: &ListenRequest,
        make: impl FnOnce() -> EndpointRecord,
    ) -> Result<(EndpointRecord, bool), StoreError> {
        self.write(|tx| {
            let mut listeners = tx.open_table(tables::LISTENERS)?;
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            let known = listeners.get((owner.app.as_u128(), key_hash))?.map(|v| EndpointId(v.value()));
            let existing = match known {
                Some(id) => endpoints::get_in(&table, owner.app, id)?,
                None => None,
            };
            let (mut record, made) = match &existing {
                Some(record) => (record.clone(), false),
                None => (make(), true),
            };
            request.apply_to(&mut record, key_hash);
            let bytes = encode(endpoints::TABLE, &record)?;
            table.insert((owner.app.as_u128(), record.id.as_u128()), bytes.as_slice())?;
            endpoints::reindex_in(tx, existing.as_ref(), Some(&record))?;
            listeners.insert((owner.app.as_u128(), key_hash), record.id.as_u128())?;
            Ok((record, made))
        })
    }

    /// Records that a listener endpoint was used at `now` (Unix seconds), if it still
    /// exists.
    pub fn touch_listener(&self, owner: Owner, id: EndpointId, now: i64) -> Result<(), StoreError> {
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

    /// The listener endpoints last used before `cutoff` (Unix seconds), with their
    /// owners: the candidates for idle expiry.
    pub fn idle_listeners(&self, cutoff: i64) -> Result<Vec<(Owner, EndpointId)>, StoreError> {
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
