//! Stored responses of requests made with an `Idempotency-Key`.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::apps::Owner;
use super::sealing::Sealer;
use super::{RedbStore, StoreError, decode, decode_found, encode, tables};

const TABLE: &str = "idempotency";

/// How long a stored response is replayed, in seconds (24 hours, as Stripe). Past it a
/// key is new again, and retention may drop the record.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// The first response given to a request with a given key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 (hex) of the method, path and body of the request, so a reuse of the key
    /// for a different request is detected.
    pub fingerprint: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered.
    pub body: String,
    /// When it was stored (Unix seconds); records older than the idempotency window are
    /// treated as absent.
    pub created: i64,
}

impl IdempotencyRecord {
    /// The record as stored: its body sealed to `owner`'s application and `key`.
    pub(crate) fn sealed(&self, sealer: &Sealer, owner: Owner, key: &str) -> IdempotencyRecord {
        IdempotencyRecord { body: sealer.seal_text(&row(owner.app.as_u128(), key), &self.body), ..self.clone() }
    }

    /// The record as read back: its body opened.
    pub(crate) fn opened(mut self, sealer: &Sealer, owner: Owner, key: &str) -> Result<IdempotencyRecord, StoreError> {
        self.body = sealer.open_text(&row(owner.app.as_u128(), key), self.body)?;
        Ok(self)
    }
}

impl RedbStore {
    /// The record stored under this key in this application, if any.
    pub fn idempotency_record(&self, owner: Owner, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found: Option<IdempotencyRecord> = self.read(|tx| {
            let table = tx.open_table(tables::IDEMPOTENCY)?;
            decode_found(TABLE, table.get((owner.app.as_u128(), key))?)
        })?;
        found.map(|record| record.opened(&self.sealer, owner, key)).transpose()
    }

    /// Stores (or replaces an expired) record under this key.
    pub fn put_idempotency_record(
        &self,
        owner: Owner,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let sealed = record.sealed(&self.sealer, owner, key);
        let bytes = encode(TABLE, &sealed)?;
        self.write(|tx| {
            let app = owner.app.as_u128();
            tx.open_table(tables::IDEMPOTENCY)?.insert((app, key), bytes.as_slice())?;
            tx.open_table(tables::IDEMPOTENCY_BY_AGE)?.insert((record.created.max(0) as u64, app, key), ())?;
            Ok(())
        })
    }
}

/// The row a stored response belongs to (its application and key), sealed with it.
pub(super) fn row(app: u128, key: &str) -> Vec<u8> {
    let mut row = app.to_be_bytes().to_vec();
    row.extend_from_slice(key.as_bytes());
    row
}

/// Fills the age index from the records when a data file from before the index has
/// records but no index, so retention reaches them too.
pub(crate) fn index_by_age_if_missing(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut by_age = tx.open_table(tables::IDEMPOTENCY_BY_AGE)?;
    let records = tx.open_table(tables::IDEMPOTENCY)?;
    if !by_age.is_empty()? || records.is_empty()? {
        return Ok(());
    }
    for entry in records.iter()? {
        let (key, value) = entry?;
        let (app, key) = key.value();
        let record: IdempotencyRecord = decode(TABLE, value.value())?;
        by_age.insert((record.created.max(0) as u64, app, key), ())?;
    }
    Ok(())
}
