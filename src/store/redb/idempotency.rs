//! Stored responses of requests made with an `Idempotency-Key`.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::store::backend::Idempotency;
use crate::store::model::{IdempotencyBegin, IdempotencyRecord, Owner, StoreError};

use super::{RedbStore, decode, decode_found, encode, tables};

const TABLE: &str = "idempotency";

impl RedbStore {
    /// The record stored under this key in this application, if any.
    pub fn idempotency_record(&self, owner: Owner, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found: Option<IdempotencyRecord> = self.read(|tx| {
            let table = tx.open_table(tables::IDEMPOTENCY)?;
            decode_found(TABLE, table.get((owner.app.as_u128(), key))?)
        })?;
        found.map(|record| record.opened(&self.sealer, owner, key)).transpose()
    }
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

impl Idempotency for RedbStore {
    /// Begins a request with this key at `now`: the stored answer, or leave to run. One
    /// process owns a data file, and the API holds the key in memory from before this
    /// call until the answer is stored, so the read alone decides and nothing is written.
    async fn begin_idempotent(
        &self,
        owner: Owner,
        key: String,
        _fingerprint: String,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        Ok(IdempotencyRecord::begin(self.idempotency_record(owner, &key)?, now))
    }

    async fn abandon_idempotent(
        &self,
        _owner: Owner,
        _key: String,
        _fingerprint: String,
        _since: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_idempotency_record(
        &self,
        owner: Owner,
        key: String,
        record: IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let sealed = record.sealed(&self.sealer, owner, &key);
        let bytes = encode(TABLE, &sealed)?;
        self.write(|tx| {
            let app = owner.app.as_u128();
            tx.open_table(tables::IDEMPOTENCY)?.insert((app, key.as_str()), bytes.as_slice())?;
            tx.open_table(tables::IDEMPOTENCY_BY_AGE)?.insert((record.created.max(0) as u64, app, key.as_str()), ())?;
            Ok(())
        })
    }
}
