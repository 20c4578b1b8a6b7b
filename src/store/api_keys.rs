//! Stored API keys. Only the SHA-256 of a key is kept, with the few characters that may
//! be shown to tell keys apart.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{RedbStore, StoreError, decode, encode, tables};
use crate::ids::AppId;
use crate::mode::Mode;

/// What is known about a stored key, besides its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The mode prefix and first characters, e.g. `vk_test_AbC123xY`.
    pub prefix: String,
    /// The mode the key works in.
    pub mode: Mode,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// The one application the key may act on, if it is app-restricted (what an operator
    /// hands to one customer's integration); `None`: every application of its mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
}

const TABLE: &str = "api_keys";

impl RedbStore {
    /// Stores a new key by its hash.
    pub fn insert_api_key(&self, hash: &[u8; 32], record: &ApiKeyRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, record)?;
        self.write(|tx| {
            tx.open_table(tables::API_KEYS)?.insert(hash, bytes.as_slice())?;
            Ok(())
        })
    }

    /// Every stored key's hash and record, oldest first.
    pub fn api_keys(&self) -> Result<Vec<([u8; 32], ApiKeyRecord)>, StoreError> {
        let mut keys = self.read(|tx| {
            let table = tx.open_table(tables::API_KEYS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (hash, value) = entry?;
                out.push((*hash.value(), decode::<ApiKeyRecord>(TABLE, value.value())?));
            }
            Ok(out)
        })?;
        keys.sort_by(|a, b| a.1.created.cmp(&b.1.created).then_with(|| a.1.prefix.cmp(&b.1.prefix)));
        Ok(keys)
    }

    /// Deletes the one key whose shown prefix starts with `prefix`. Deletes nothing when
    /// no key or several keys match, so a short prefix cannot revoke more than meant.
    pub fn revoke_api_key(&self, prefix: &str) -> Result<Revoked, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(tables::API_KEYS)?;
            let mut matches = Vec::new();
            for entry in table.iter()? {
                let (hash, value) = entry?;
                let record: ApiKeyRecord = decode(TABLE, value.value())?;
                if record.prefix.starts_with(prefix) {
                    matches.push((*hash.value(), record));
                }
            }
            match matches.len() {
                0 => Ok(Revoked::NoMatch),
                1 => {
                    let (hash, record) = matches.remove(0);
                    table.remove(&hash)?;
                    Ok(Revoked::One(record))
                }
                _ => Ok(Revoked::Ambiguous(matches.into_iter().map(|(_, r)| r).collect())),
            }
        })
    }
}

/// Removes, inside `tx`, every key restricted to `app` (the application is being deleted).
pub(super) fn revoke_app_keys(tx: &redb::WriteTransaction, app: AppId) -> Result<usize, StoreError> {
    let mut table = tx.open_table(tables::API_KEYS)?;
    let mut doomed = Vec::new();
    for entry in table.iter()? {
        let (hash, value) = entry?;
        if decode::<ApiKeyRecord>(TABLE, value.value())?.app == Some(app) {
            doomed.push(*hash.value());
        }
    }
    for hash in &doomed {
        table.remove(hash)?;
    }
    Ok(doomed.len())
}

/// What [`RedbStore::revoke_api_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This key was revoked.
    One(ApiKeyRecord),
    /// No key has that prefix; nothing changed.
    NoMatch,
    /// These keys all have that prefix; nothing changed.
    Ambiguous(Vec<ApiKeyRecord>),
}
