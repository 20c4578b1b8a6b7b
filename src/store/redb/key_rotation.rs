//! `stile rotate-payload-key`: every sealed value (and any plaintext left by an earlier
//! release) sealed again under a new key, with the server stopped.
//!
//! The new key is written to `<key file>.new` first and the values are re-sealed a batch
//! per transaction, each opened with whichever key it is sealed with, so an interrupted
//! rotation is finished by running it again (and the server refuses to start while the
//! `.new` file exists). Only when every value is re-sealed does the data file record the
//! new key; then the old key file is kept as `<key file>.old-<id>` (backups taken before
//! need it) and the new one takes its place.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{ReadableTable, WriteTransaction};

use crate::ids::DeliveryId;
use crate::store::model::attempts::{response_row, sent_row};
use crate::store::model::sessions::idempotency_row;
use crate::store::model::{EndpointRecord, IdempotencyRecord, RotateError, Rotated, StoreError};
use crate::store::sealing::{self, KeyError, Sealer, open_either};

use super::attempt_record::{decode_attempt, encode_attempt};
use super::names::Interner;
use super::{RedbStore, StoreOptions, decode, encode, endpoints, tables};

/// Values re-sealed per transaction.
const BATCH: usize = 500;

/// Rotates the payload key of the data file in `dir` (the server must be stopped: the
/// file's lock is taken).
pub fn rotate_payload_key(dir: &Path, options: &StoreOptions) -> Result<Rotated, RotateError> {
    let key_file = options.key_file(dir);
    let pending = sealing::pending_key_path(&key_file);
    let mut store = RedbStore::open_without_key(dir, options)?;
    let (old, _) = sealing::load_or_create_key(&key_file, false).map_err(|err| match err {
        KeyError::Io(path, io) if io.kind() == std::io::ErrorKind::NotFound => {
            KeyError::Missing { path, id: "(the one the data file records)".into() }
        }
        other => other,
    })?;
    let (new, _) = sealing::load_or_create_key(&pending, true)?;
    let recorded = store.recorded_key_id()?;
    if recorded.is_some_and(|id| id != old.id() && id != new.id()) {
        let expected = format!("{:016x}", recorded.unwrap_or_default());
        return Err(KeyError::Wrong { path: key_file, found: old.key_id(), expected }.into());
    }
    store.sealer = old.clone();
    let mut rotated = Rotated {
        old_key: old.key_id(),
        new_key: new.key_id(),
        payloads: 0,
        responses: 0,
        idempotency: 0,
        endpoints: 0,
        old_key_file: PathBuf::from(format!("{}.old-{}", key_file.display(), old.key_id())),
    };
    if recorded != Some(new.id()) {
        rotated.payloads = store.reseal_payloads(&old, &new)?;
        rotated.responses = store.reseal_responses(&old, &new)?;
        rotated.idempotency = store.reseal_idempotency(&old, &new)?;
        rotated.endpoints = store.reseal_secrets(&old, &new)?;
        store.record_key_id(new.id())?;
    }
    drop(store);
    std::fs::rename(&key_file, &rotated.old_key_file).map_err(|e| RotateError::Files(key_file.clone(), e))?;
    std::fs::rename(&pending, &key_file).map_err(|e| RotateError::Files(pending.clone(), e))?;
    if let Some(parent) = key_file.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| RotateError::Files(key_file.clone(), e))?;
    }
    Ok(rotated)
}

impl RedbStore {
    /// Re-seals every event payload under `new`; returns how many.
    fn reseal_payloads(&self, old: &Sealer, new: &Sealer) -> Result<usize, StoreError> {
        self.reseal_in_batches(|tx, from| {
            let mut bodies = tx.open_table(tables::EVENT_BODIES)?;
            let rows: Vec<(u128, Vec<u8>)> = bodies
                .range(from..)?
                .take(BATCH)
                .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()?;
            for (id, stored) in &rows {
                let row = id.to_be_bytes();
                let plain = open_either(new, old, &row, stored)?;
                bodies.insert(*id, new.seal(&row, &plain).as_slice())?;
            }
            Ok((rows.len(), (rows.len() == BATCH).then(|| rows.last().map(|(id, _)| id + 1)).flatten()))
        })
    }

    /// Re-seals every attempt's response excerpt, and the body its endpoint's
    /// transformation made, under `new`; returns how many attempts.
    fn reseal_responses(&self, old: &Sealer, new: &Sealer) -> Result<usize, StoreError> {
        self.reseal_in_batches(|tx, from| {
            let mut attempts = tx.open_table(tables::ATTEMPTS)?;
            let mut names = Interner::open(tx, &self.names)?;
            let rows: Vec<(u128, Vec<u8>)> = attempts
                .range(from..)?
                .take(BATCH)
                .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()?;
            let mut resealed = 0;
            for (id, bytes) in &rows {
                let mut record = decode_attempt(*id, bytes, names.memory())?;
                if record.response_body.is_none() && record.sent.is_none() {
                    continue;
                }
                if let Some(body) = record.response_body.take() {
                    let row = response_row(DeliveryId(*id));
                    record.response_body = Some(sealing::reseal_text(old, new, &row, body)?);
                }
                if let Some(sent) = &mut record.sent {
                    let row = sent_row(DeliveryId(*id));
                    sent.body = sealing::reseal_text(old, new, &row, std::mem::take(&mut sent.body))?;
                }
                attempts.insert(*id, encode_attempt(&record, &mut names)?.as_slice())?;
                resealed += 1;
            }
            Ok((resealed, (rows.len() == BATCH).then(|| rows.last().map(|(id, _)| id + 1)).flatten()))
        })
    }

    /// Re-seals every endpoint's signing secrets and authentication credentials under `new` (endpoints are few: one
    /// transaction); returns how many endpoints.
    fn reseal_secrets(&self, old: &Sealer, new: &Sealer) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut table = tx.open_table(tables::ENDPOINTS)?;
            let rows: Vec<((u128, u128), Vec<u8>)> =
                table.iter()?.map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec()))).collect::<Result<_, _>>()?;
            for (key, bytes) in &rows {
                let mut record: EndpointRecord = decode(endpoints::TABLE, bytes)?;
                let (app, id) = record.secret_owner();
                for secret in &mut record.secrets {
                    secret.secret = secret.secret.resealed(old, new, app, id)?;
                }
                if let Some(auth) = &record.authentication {
                    record.authentication = Some(auth.resealed(old, new, app, id)?);
                }
                if let Some(certificate) = &record.client_certificate {
                    record.client_certificate = Some(certificate.resealed(old, new, app, id)?);
                }
                table.insert(*key, encode(endpoints::TABLE, &record)?.as_slice())?;
            }
            Ok(rows.len())
        })
    }

    /// Re-seals every stored idempotent response under `new`; returns how many.
    fn reseal_idempotency(&self, old: &Sealer, new: &Sealer) -> Result<usize, StoreError> {
        // Keys are (app, string): walk them in order from the last one done.
        let mut done = 0;
        let mut after: Option<(u128, String)> = None;
        loop {
            let (n, last) = self.write(|tx| {
                let mut records = tx.open_table(tables::IDEMPOTENCY)?;
                let start = match &after {
                    None => Bound::Unbounded,
                    Some((app, key)) => Bound::Excluded((*app, key.as_str())),
                };
                let rows: Vec<(u128, String, Vec<u8>)> = records
                    .range::<(u128, &str)>((start, Bound::Unbounded))?
                    .take(BATCH)
                    .map(|row| row.map(|(k, v)| (k.value().0, k.value().1.to_string(), v.value().to_vec())))
                    .collect::<Result<_, _>>()?;
                for (app, key, bytes) in &rows {
                    let mut record: IdempotencyRecord = decode("idempotency", bytes)?;
                    let row = idempotency_row(*app, key);
                    let body = std::mem::take(&mut record.body);
                    record.body = sealing::reseal_text(old, new, &row, body)?;
                    records.insert((*app, key.as_str()), encode("idempotency", &record)?.as_slice())?;
                }
                Ok::<_, StoreError>((rows.len(), rows.last().map(|(app, key, _)| (*app, key.clone()))))
            })?;
            done += n;
            match last {
                Some(last) if n == BATCH => after = Some(last),
                _ => return Ok(done),
            }
        }
    }

    /// Runs `batch` from key 0 on, one transaction each, until it says where to go on
    /// from is nowhere; sums what it counted.
    fn reseal_in_batches(
        &self,
        mut batch: impl FnMut(&WriteTransaction, u128) -> Result<(usize, Option<u128>), StoreError>,
    ) -> Result<usize, StoreError> {
        let mut from = 0u128;
        let mut done = 0;
        loop {
            let (n, next) = self.write(|tx| batch(tx, from))?;
            done += n;
            match next {
                Some(next) => from = next,
                None => return Ok(done),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::backend::Apps;
    use crate::store::backend::Attempts;
    use crate::store::backend::Endpoints;
    use crate::store::backend::Events;
    use crate::store::backend::Idempotency;
    use crate::store::backend::Scheduling;
    use std::time::Duration;

    use super::*;
    use crate::delivery::policy::Policy;
    use crate::mode::Mode;
    use crate::store::model::AttemptResult;
    use crate::store::model::Cursor;
    use crate::store::model::EndpointRecord;
    use crate::store::model::PageRequest;

    #[tokio::test]
    async fn every_kind_of_sealed_value_reads_the_same_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let owner = store.test_owner(Mode::Test).await;
        let mut endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        endpoint.secrets = vec![crate::store::model::endpoints::SigningSecret::new(
            &store.sealer,
            endpoint.secret_owner(),
            "whsec_AAEC",
            None,
        )];
        store.insert_endpoint(endpoint.clone()).await.unwrap();
        let event =
            crate::payload::new_event(owner, "a.b", &serde_json::json!({"n": 1}), crate::clock::unix_now_ms()).unwrap();
        let (_, scheduled) = store.publish_events(std::slice::from_ref(&event).to_vec(), 1_000).await.unwrap();
        let mut result = AttemptResult::for_test(scheduled.keys()[0], endpoint.id, false, 1_000);
        result.response_body = Some("the endpoint said no".into());
        let policy = Policy {
            schedule: vec![],
            disable_after: Duration::from_secs(3600),
            undelivered_hours: 1,
            failing_after: None,
        };
        store.publish_and_record(Arc::from([]), Arc::from([result]), 1_000, policy).await.unwrap();
        let record = IdempotencyRecord { fingerprint: "f".into(), status: 200, body: "{\"n\":1}".into(), created: 1 };
        store.put_idempotency_record(owner, "key-1".into(), record.clone()).await.unwrap();
        drop(store);

        let rotated = rotate_payload_key(dir.path(), &StoreOptions::default()).unwrap();
        // One payload: no operational endpoint hears that its delivery failed, so nothing
        // tells of it.
        assert_eq!((rotated.payloads, rotated.responses, rotated.idempotency, rotated.endpoints), (1, 1, 1, 1));
        assert_ne!(rotated.old_key, rotated.new_key);
        assert!(rotated.old_key_file.exists());

        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.sealer.key_id(), rotated.new_key);
        assert_eq!(store.event(owner, event.meta.id).await.unwrap().unwrap().body, event.body);
        let page =
            store.list_attempts(owner, endpoint.id, PageRequest { limit: 10, cursor: Cursor::Start }, None).await;
        assert_eq!(page.unwrap().items[0].response_body.as_deref(), Some("the endpoint said no"));
        assert_eq!(store.idempotency_record(owner, "key-1").unwrap(), Some(record));
        let stored = store.endpoint(owner, endpoint.id).await.unwrap().unwrap();
        assert_eq!(stored.current_secret(&store.sealer).unwrap(), "whsec_AAEC");
    }
}
