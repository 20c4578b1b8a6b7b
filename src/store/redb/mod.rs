//! The redb store: one file in the data directory, the only place state lives.
//!
//! redb is synchronous: its backend methods are `async` only in name (they await nothing),
//! and [`Store`](crate::store::Store) runs each where synchronous work belongs
//! ([`crate::store::blocking`]), so no caller's thread waits on a commit. Each concern's file
//! implements that concern's backend trait (`store/backend.rs`) for `RedbStore`; the
//! tables are all in `tables.rs`.

mod api_keys;
mod app_deletion;
mod apps;
mod attempt_record;
mod attempts;
mod backup;
mod endpoints;
mod event_types;
mod events;
mod health;
mod idempotency;
mod inspect;
mod jobs;
mod key_rotation;
mod listeners;
mod migrate;
mod names;
mod pagination;
mod portal_sessions;
mod queue;
mod recovery;
mod replays;
mod retention;
mod scheduling;
mod secrets_at_rest;
mod sessions;
mod stats;
mod tables;

use crate::store::backend::Backend;
use crate::store::blocking::{Interrupted, run_sync};
use crate::store::model::{OpenError, StoreError};
use crate::store::{file_modes, sealing};

#[cfg(test)]
pub(crate) use attempt_record::headers_stored_compact;
pub use backup::{BackupError, BackupSummary, NotADataFile, check_data_file};
pub use inspect::{TableUsage, inspect_file};
pub use key_rotation::rotate_payload_key;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The data file's name inside the data directory.
pub const DATA_FILE_NAME: &str = "stile.redb";

/// The layout version this build reads and writes. Bump it with a migration whenever a
/// table's key or value format changes. 7: attempt records may be `ATTEMPT_V3` (with the
/// request an endpoint's transformation made), which layout 6 cannot read; nothing to
/// migrate, but a release of layout 6 refuses the file rather than misread it.
pub const SCHEMA_VERSION: u64 = 7;

/// The open data file.
///
/// After an I/O error redb refuses further use of the `Database` until it is opened again
/// (its in-memory state may no longer match the file). The store then reopens the file
/// before the next operation, so a disk that filled up and was freed again, or a passing
/// I/O fault, is recovered from without a restart; until the reopen succeeds every
/// operation fails as "storage unavailable".
pub struct RedbStore {
    db: RwLock<Option<Database>>,
    /// Set after an I/O error: reopen before the next operation.
    broken: AtomicBool,
    path: PathBuf,
    /// The page cache size it was opened with, to reopen it the same way.
    cache_mib: usize,
    /// Seals payloads with the data file's key.
    sealer: sealing::Sealer,
    /// The names records hold by number (see [`names`]).
    names: names::Names,
    /// How many hours an undelivered payload is kept for endpoints that set no window of
    /// their own (`[retention] undelivered_payload_hours`).
    undelivered_hours: std::sync::atomic::AtomicU32,
    /// See `Backend::bear_births`.
    bears_births: std::sync::atomic::AtomicBool,
}

/// How to open a data file.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The page cache size, in MiB.
    pub cache_mib: usize,
    /// The payload key file; `None`: `payload.key` in the data directory.
    pub payload_key_file: Option<PathBuf>,
}

impl StoreOptions {
    /// The payload key file for a data file in `dir`.
    pub fn key_file(&self, dir: &Path) -> PathBuf {
        self.payload_key_file.clone().unwrap_or_else(|| dir.join(sealing::KEY_FILE_NAME))
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_mib: DEFAULT_CACHE_MIB, payload_key_file: None }
    }
}

/// The `meta` entry holding the id of the key the file's payloads are sealed with.
const PAYLOAD_KEY_ID: &str = "payload_key_id";

/// Errors that can tell whether they came from an I/O failure of the data file, after
/// which the store must reopen it.
pub(crate) trait ReopenHint {
    /// Whether the store should reopen the data file before going on.
    fn needs_reopen(&self) -> bool;
}

impl ReopenHint for StoreError {
    fn needs_reopen(&self) -> bool {
        matches!(self, StoreError::Db(DbError(redb::Error::Io(_) | redb::Error::PreviousIo)))
    }
}

/// A failure of the storage engine underneath the store, kept opaque outside it (only its
/// message is shown), so no caller depends on which engine that is.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(redb::Error);

macro_rules! store_error_from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                StoreError::Db(DbError(err.into()))
            }
        }
    )*};
}
store_error_from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);

impl DbError {
    /// Whether the failure is the disk refusing writes (full, read-only) or the file
    /// closed after one, worth a 503 and a retry later rather than a 500.
    pub fn is_unavailable(&self) -> bool {
        match &self.0 {
            redb::Error::Io(io) => matches!(
                io.kind(),
                ErrorKind::StorageFull
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::PermissionDenied
                    | ErrorKind::QuotaExceeded
            ),
            redb::Error::PreviousIo => true,
            _ => false,
        }
    }
}

use crate::store::model::DEFAULT_UNDELIVERED_HOURS;

impl RedbStore {
    /// Runs `work` on this store where synchronous work belongs (see [`run_sync`]).
    pub(in crate::store) async fn blocking<T: Interrupted + Send + 'static>(
        self: &std::sync::Arc<Self>,
        work: impl FnOnce(&RedbStore) -> T + Send + 'static,
    ) -> T {
        let store = std::sync::Arc::clone(self);
        run_sync(move || work(&store)).await
    }

    /// Opens (or creates) the data file in `dir` with the default settings (the payload
    /// key in `dir`), refusing if another process has it open.
    pub fn open(dir: &Path) -> Result<RedbStore, OpenError> {
        RedbStore::open_with(dir, &StoreOptions::default())
    }

    /// Opens (or creates) the data file in `dir` with these settings. The payload key is
    /// created with a new data file (or one written before payloads were sealed); for a
    /// file whose payloads are sealed, a missing or different key is refused.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<RedbStore, OpenError> {
        let key_file = options.key_file(dir);
        let pending = sealing::pending_key_path(&key_file);
        if pending.exists() {
            return Err(sealing::KeyError::RotationUnfinished(pending).into());
        }
        let mut store = RedbStore::open_without_key(dir, options)?;
        store.sealer = store.payload_key(&key_file)?;
        let sealed = store.seal_clear_secrets().map_err(|e| OpenError::Init(store.path.clone(), e))?;
        if sealed > 0 {
            tracing::info!(endpoints = sealed, "endpoint secrets stored in clear by an earlier release are sealed now");
        }
        Ok(store)
    }

    /// Opens the data file with a placeholder key that has sealed nothing, for the key
    /// rotation, which chooses its keys itself.
    fn open_without_key(dir: &Path, options: &StoreOptions) -> Result<RedbStore, OpenError> {
        file_modes::create_private_dir(dir).map_err(|e| OpenError::CreateDir(dir.to_path_buf(), e))?;
        let path = dir.join(DATA_FILE_NAME);
        file_modes::make_owner_only(&path)
            .map_err(|e| OpenError::Database(path.clone(), DbError(redb::Error::Io(e))))?;
        let cache_mib = options.cache_mib;
        let db = open_database(&path, cache_mib).map_err(|err| match err {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(path.clone()),
            other => OpenError::Database(path.clone(), DbError(other.into())),
        })?;
        let sealer = sealing::Sealer::new(&[0; 32]);
        let names = names::Names::default();
        let mut store = RedbStore {
            db: RwLock::new(Some(db)),
            broken: AtomicBool::new(false),
            path,
            cache_mib,
            sealer,
            names,
            undelivered_hours: DEFAULT_UNDELIVERED_HOURS.into(),
            bears_births: false.into(),
        };
        store.init_schema()?;
        let init = |path: &Path, e| OpenError::Init(path.to_path_buf(), e);
        store.names =
            store.read(|tx| names::Names::load(&tx.open_table(names::NAMES)?)).map_err(|e| init(&store.path, e))?;
        store.run_backfills().map_err(|e| init(&store.path, e))?;
        Ok(store)
    }

    /// The id of the key the data file's payloads are sealed with, if it records one.
    fn recorded_key_id(&self) -> Result<Option<u64>, StoreError> {
        self.read(|tx| Ok(tx.open_table(tables::META)?.get(PAYLOAD_KEY_ID)?.map(|v| v.value())))
    }

    /// Records `id` as the key the data file's payloads are sealed with.
    fn record_key_id(&self, id: u64) -> Result<(), StoreError> {
        self.write(|tx| Ok(tx.open_table(tables::META)?.insert(PAYLOAD_KEY_ID, id).map(|_| ())?))
    }

    /// The payload key for this data file: the one it records (which must be in
    /// `key_file`), or, for a file that records none yet, the one in `key_file` (created
    /// if absent), recorded now.
    fn payload_key(&self, key_file: &Path) -> Result<sealing::Sealer, OpenError> {
        let init = |err| OpenError::Init(self.path.clone(), err);
        match self.recorded_key_id().map_err(init)? {
            Some(expected) => {
                let expected_hex = format!("{expected:016x}");
                let sealer = match sealing::load_or_create_key(key_file, false) {
                    Ok((sealer, _)) => sealer,
                    Err(sealing::KeyError::Io(path, err)) if err.kind() == ErrorKind::NotFound => {
                        return Err(sealing::KeyError::Missing { path, id: expected_hex }.into());
                    }
                    Err(err) => return Err(err.into()),
                };
                if sealer.id() != expected {
                    let found = sealer.key_id();
                    return Err(sealing::KeyError::Wrong {
                        path: key_file.to_path_buf(),
                        found,
                        expected: expected_hex,
                    }
                    .into());
                }
                Ok(sealer)
            }
            None => {
                let (sealer, created) = sealing::load_or_create_key(key_file, true)?;
                self.record_key_id(sealer.id()).map_err(init)?;
                if created {
                    tracing::info!(path = %key_file.display(), key = %sealer.key_id(), "payload key created: back it up with the data file");
                }
                Ok(sealer)
            }
        }
    }

    /// The data file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the schema version in a new file, moves a file of an earlier layout to the
    /// current one (in the same transaction), and refuses a file from a newer stile.
    fn init_schema(&self) -> Result<(), OpenError> {
        let found = self
            .write(|tx| {
                let mut meta = tx.open_table(tables::META)?;
                let found = meta.get("schema_version")?.map(|v| v.value());
                if found.is_some_and(|v| v > SCHEMA_VERSION) {
                    return Ok(found); // a newer stile's file: leave it untouched
                }
                // Create every table so readers never meet a missing one.
                tx.open_table(tables::API_KEYS)?;
                tx.open_table(tables::APPS)?;
                tx.open_table(tables::APP_UIDS)?;
                tx.open_table(tables::DELETED_APPS)?;
                tx.open_table(tables::ENDPOINTS)?;
                tx.open_table(tables::ENDPOINT_HEALTH)?;
                tx.open_table(tables::ENDPOINT_LABELS)?;
                tx.open_table(tables::ENDPOINT_SUBSCRIPTIONS)?;
                tx.open_table(tables::IDEMPOTENCY)?;
                tx.open_table(tables::IDEMPOTENCY_BY_AGE)?;
                tx.open_table(tables::EVENTS)?;
                tx.open_table(tables::EVENTS_BY_TYPE)?;
                tx.open_table(tables::EVENTS_BY_DATA_ID)?;
                tx.open_table(tables::EVENT_BODIES)?;
                tx.open_table(tables::EVENT_PENDING)?;
                tx.open_table(tables::EVENT_FAILURES)?;
                tx.open_table(tables::UNDELIVERED_HOLDS)?;
                tx.open_table(tables::PORTAL_SESSIONS)?;
                tx.open_table(tables::PORTAL_SESSIONS_BY_APP)?;
                tx.open_table(tables::ATTEMPTS)?;
                tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
                tx.open_table(tables::EVENT_ATTEMPTS)?;
                tx.open_table(tables::DELIVERY_STATS)?;
                tx.open_table(tables::FAILED_ATTEMPTS)?;
                tx.open_table(tables::ENDPOINT_FAILURES)?;
                tx.open_table(tables::QUEUE)?;
                tx.open_table(tables::ENDPOINT_PENDING)?;
                tx.open_table(tables::PARKED_ATTEMPTS)?;
                tx.open_table(tables::VERIFICATION_SESSIONS)?;
                tx.open_table(tables::SESSION_EXPIRY)?;
                tx.open_table(tables::EVENT_TYPES)?;
                tx.open_table(tables::LISTENERS)?;
                tx.open_table(tables::REPLAYS)?;
                tx.open_table(tables::WATCHED_REPLAYS)?;
                tx.open_table(tables::REPLAY_DELIVERIES)?;
                tx.open_table(tables::SKIPPED_DELIVERIES)?;
                tx.open_table(tables::BACKFILLS)?;
                tx.open_table(names::NAMES)?;
                tx.open_table(names::NAME_IDS)?;
                let defaults = apps::ensure_defaults(tx, crate::clock::unix_now())?;
                if found == Some(1) {
                    migrate::v1_to_v2(tx, defaults)?;
                    tracing::info!(path = %self.path.display(), "data file moved to layout version 2 (applications)");
                }
                idempotency::index_by_age_if_missing(tx)?;
                if let Some(found) = found.filter(|v| *v < SCHEMA_VERSION) {
                    migrate::start_backfills(tx, found)?;
                }
                meta.insert("schema_version", SCHEMA_VERSION)?;
                Ok(found)
            })
            .map_err(|e| OpenError::Init(self.path.clone(), e))?;
        match found {
            Some(found) if found > SCHEMA_VERSION => {
                Err(OpenError::NewerSchema { path: self.path.clone(), found, known: SCHEMA_VERSION })
            }
            _ => Ok(()),
        }
    }

    /// Runs `f` with the database, reopening it first if an I/O error broke it, and
    /// marking it broken if `f` meets one.
    fn with_db<T, E>(&self, f: impl FnOnce(&Database) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError> + ReopenHint,
    {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let result = {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(db) => f(db),
                None => Err(StoreError::Unavailable("the data file is not open".into()).into()),
            }
        };
        if let Err(err) = &result
            && err.needs_reopen()
        {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    /// Closes and opens the data file again (waiting for operations in progress).
    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        if !self.broken.load(Ordering::Acquire) {
            return Ok(()); // another thread reopened it meanwhile
        }
        // The old handle holds the file lock: it must be gone before the new one opens.
        guard.take();
        match open_database(&self.path, self.cache_mib) {
            Ok(db) => {
                *guard = Some(db);
                self.broken.store(false, Ordering::Release);
                tracing::warn!(path = %self.path.display(), "data file reopened after a storage error");
                Ok(())
            }
            Err(err) => Err(StoreError::Unavailable(err.to_string())),
        }
    }

    /// Runs `f` in a read transaction (a consistent snapshot; never blocks writers).
    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_read()?;
            f(&tx)
        })
    }

    /// Runs `f` in a write transaction and commits it durably; nothing is written if `f`
    /// fails.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

impl Backend for RedbStore {
    fn undelivered_hours(&self) -> u32 {
        self.undelivered_hours.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_undelivered_hours(&self, hours: u32) {
        self.undelivered_hours.store(hours, std::sync::atomic::Ordering::Relaxed);
    }

    fn bear_births(&self) {
        self.bears_births.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn bears_births(&self) -> bool {
        self.bears_births.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(()))
    }

    fn sealer(&self) -> &sealing::Sealer {
        &self.sealer
    }
}

/// A write transaction of the store, as the rules in [`rules`](crate::store::rules) use
/// it (each rule's primitives are implemented in the file of its concern).
pub(super) struct Tx<'a> {
    tx: &'a WriteTransaction,
    store: &'a RedbStore,
}

/// The most memory, in MiB, redb may use to cache pages unless `[store] cache_mib` says
/// otherwise. redb's own default (1 GiB) lets the cache grow with the file; the hot data
/// (recent events and the queue) is small, and a server on a shared VM should stay within
/// a predictable footprint. 8 MiB against 16 (2026-12-07, `benches/load.rs`): W1 44–46
/// MiB of peak RSS against 49–50 at the same rate (3 runs each, interleaved), W5's backlog
/// of 1,000,000 64 against 79 MiB with the same drain rate, W6's lists over 1,000,000
/// events the same p99s; 64 MiB against 16, with 1,000 applications of 10 endpoints
/// each: no difference beyond the noise, for 12 MiB more RSS.
pub const DEFAULT_CACHE_MIB: usize = 8;

/// Opens (or creates) the redb file with stile's settings.
fn open_database(path: &Path, cache_mib: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_mib << 20).create(path)
}

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { table, source })
}

/// Decodes a stored record.
pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Decodes the record a table lookup found, if it found one.
pub(crate) fn decode_found<T: DeserializeOwned>(
    table: &'static str,
    found: Option<redb::AccessGuard<'_, &'static [u8]>>,
) -> Result<Option<T>, StoreError> {
    found.map(|bytes| decode(table, bytes.value())).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).err().expect("second open must fail");
        assert!(matches!(err, OpenError::InUse(_)), "{err}");
        drop(first);
        RedbStore::open(dir.path()).expect("reopens once the first is closed");
    }

    #[test]
    fn a_file_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .write(|tx| {
                tx.open_table(tables::META)?.insert("schema_version", SCHEMA_VERSION + 1)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let err = RedbStore::open(dir.path()).err().expect("newer schema must be refused");
        assert!(err.to_string().contains("upgrade stile"), "{err}");
    }

    #[test]
    fn a_garbage_data_file_is_an_open_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATA_FILE_NAME), vec![0x5a; 64 * 1024]).unwrap();
        assert!(RedbStore::open(dir.path()).is_err());
    }
}
