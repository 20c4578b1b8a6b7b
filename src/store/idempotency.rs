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

/// How long a request in progress holds its key on a database other processes share, in
/// seconds: past it the claim is taken to be abandoned (its process died mid-request)
/// and the key may run again. Far above the longest request (reading it is bounded by
/// `[server] request_timeout`, a test ping by the delivery timeout).
pub const IN_PROGRESS_STALE_SECS: i64 = 300;

/// What a request with an idempotency key finds when it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// Nothing answered under the key yet: run the request (on a shared database the key
    /// is now held for it).
    Run,
    /// The answer stored for the key: replay it (if the request is the same).
    Answered(IdempotencyRecord),
    /// Another process is running a request with this key.
    InProgress,
}

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
    /// The marker a shared database holds under a key while its request runs: status 0,
    /// no body.
    pub(crate) fn in_progress(fingerprint: &str, now: i64) -> IdempotencyRecord {
        IdempotencyRecord { fingerprint: fingerprint.to_string(), status: 0, body: String::new(), created: now }
    }

    /// Whether this is the marker of a request still running, not an answer.
    pub fn is_in_progress(&self) -> bool {
        self.status == 0
    }

    /// What a request that finds this record under its key at `now` does.
    pub(crate) fn begin(found: Option<IdempotencyRecord>, now: i64) -> IdempotencyBegin {
        match found {
            Some(record) if record.is_in_progress() && now - record.created < IN_PROGRESS_STALE_SECS => {
                IdempotencyBegin::InProgress
            }
            Some(record) if !record.is_in_progress() && now - record.created < WINDOW_SECS => {
                IdempotencyBegin::Answered(record)
            }
            _ => IdempotencyBegin::Run,
        }
    }

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

    /// Begins a request with this key at `now`: the stored answer, or leave to run. One
    /// process owns a data file, and the API holds the key in memory from before this
    /// call until the answer is stored, so the read alone decides and nothing is written.
    pub fn begin_idempotent(
        &self,
        owner: Owner,
        key: &str,
        _fingerprint: &str,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        Ok(IdempotencyRecord::begin(self.idempotency_record(owner, key)?, now))
    }

    /// Lets go of a key whose request stored no answer. Nothing was written for it here
    /// (see [`RedbStore::begin_idempotent`]).
    pub fn abandon_idempotent(
        &self,
        _owner: Owner,
        _key: &str,
        _fingerprint: &str,
        _since: i64,
    ) -> Result<(), StoreError> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_request_finds_decides_whether_it_runs() {
        let now = 1_000_000;
        let answer = IdempotencyRecord { fingerprint: "f".into(), status: 200, body: "{}".into(), created: now - 10 };
        let marker = IdempotencyRecord::in_progress("f", now - 10);
        assert_eq!(IdempotencyRecord::begin(None, now), IdempotencyBegin::Run);
        assert_eq!(IdempotencyRecord::begin(Some(answer.clone()), now), IdempotencyBegin::Answered(answer.clone()));
        let expired = IdempotencyRecord { created: now - WINDOW_SECS, ..answer };
        assert_eq!(IdempotencyRecord::begin(Some(expired), now), IdempotencyBegin::Run, "past the window");
        assert_eq!(IdempotencyRecord::begin(Some(marker), now), IdempotencyBegin::InProgress);
        let stale = IdempotencyRecord::in_progress("f", now - IN_PROGRESS_STALE_SECS);
        assert_eq!(IdempotencyRecord::begin(Some(stale), now), IdempotencyBegin::Run, "its process died");
    }
}
