//! Stored API keys. Only the SHA-256 of a key is kept, with the few characters that may
//! be shown to tell keys apart.

use redb::ReadableTable;

use crate::ids::AppId;
use crate::store::backend::ApiKeys;
use crate::store::model::{ApiKeyRecord, Revoked, StoreError};

use super::{RedbStore, decode, encode, tables};

const TABLE: &str = "api_keys";

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

impl ApiKeys for RedbStore {
    async fn insert_api_key(&self, hash: [u8; 32], record: ApiKeyRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, &record)?;
        self.write(|tx| {
            tx.open_table(tables::API_KEYS)?.insert(&hash, bytes.as_slice())?;
            Ok(())
        })
    }

    async fn api_keys(&self) -> Result<Vec<([u8; 32], ApiKeyRecord)>, StoreError> {
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

    async fn revoke_api_key(&self, prefix: String) -> Result<Revoked, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(tables::API_KEYS)?;
            let mut matches = Vec::new();
            for entry in table.iter()? {
                let (hash, value) = entry?;
                let record: ApiKeyRecord = decode(TABLE, value.value())?;
                if record.prefix.starts_with(prefix.as_str()) {
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
