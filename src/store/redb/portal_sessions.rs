//! Portal sessions: links that sign one application's customer in to the app portal.
//! Only the SHA-256 of a session's token is stored; a session ends when it expires, when
//! it is revoked, or when its application is deleted.

use redb::{ReadableTable, WriteTransaction};

use crate::ids::{AppId, PortalSessionId};
use crate::store::backend::PortalSessions;
use crate::store::model::{Owner, PortalSessionRecord, StoreError};

use super::{RedbStore, decode, decode_found, encode, tables};

const TABLE: &str = "portal_sessions";

/// Ends every session of an application (it is being deleted), inside `tx`.
pub(super) fn revoke_all_in(tx: &WriteTransaction, app: AppId) -> Result<usize, StoreError> {
    let mut by_app = tx.open_table(tables::PORTAL_SESSIONS_BY_APP)?;
    let mut sessions = tx.open_table(tables::PORTAL_SESSIONS)?;
    let app = app.as_u128();
    let rows: Vec<((u128, u128), [u8; 32])> = by_app
        .range((app, 0)..=(app, u128::MAX))?
        .map(|row| row.map(|(k, v)| (k.value(), *v.value())))
        .collect::<Result<_, _>>()?;
    for (key, hash) in &rows {
        by_app.remove(*key)?;
        sessions.remove(hash)?;
    }
    Ok(rows.len())
}

/// Removes up to `limit` sessions that expired before `now` (Unix seconds), inside `tx`.
pub(super) fn prune_expired_in(tx: &WriteTransaction, now: i64, limit: usize) -> Result<(usize, bool), StoreError> {
    let mut sessions = tx.open_table(tables::PORTAL_SESSIONS)?;
    let mut expired = Vec::new();
    for row in sessions.iter()? {
        let (hash, value) = row?;
        let record: PortalSessionRecord = decode(TABLE, value.value())?;
        if record.expires_at <= now {
            expired.push((*hash.value(), record));
            if expired.len() == limit {
                break;
            }
        }
    }
    let mut by_app = tx.open_table(tables::PORTAL_SESSIONS_BY_APP)?;
    for (hash, record) in &expired {
        sessions.remove(hash)?;
        by_app.remove((record.app.as_u128(), record.id.as_u128()))?;
    }
    Ok((expired.len(), expired.len() == limit))
}

impl PortalSessions for RedbStore {
    async fn insert_portal_session(&self, hash: [u8; 32], record: PortalSessionRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, &record)?;
        self.write(|tx| {
            tx.open_table(tables::PORTAL_SESSIONS)?.insert(&hash, bytes.as_slice())?;
            tx.open_table(tables::PORTAL_SESSIONS_BY_APP)?
                .insert((record.app.as_u128(), record.id.as_u128()), &hash)?;
            Ok(())
        })
    }

    async fn portal_session(&self, hash: [u8; 32]) -> Result<Option<PortalSessionRecord>, StoreError> {
        self.read(|tx| decode_found(TABLE, tx.open_table(tables::PORTAL_SESSIONS)?.get(&hash)?))
    }

    async fn revoke_portal_session(&self, owner: Owner, id: PortalSessionId) -> Result<bool, StoreError> {
        self.write(|tx| {
            let mut by_app = tx.open_table(tables::PORTAL_SESSIONS_BY_APP)?;
            let Some(hash) = by_app.remove((owner.app.as_u128(), id.as_u128()))?.map(|h| *h.value()) else {
                return Ok(false);
            };
            tx.open_table(tables::PORTAL_SESSIONS)?.remove(&hash)?;
            Ok(true)
        })
    }
}
