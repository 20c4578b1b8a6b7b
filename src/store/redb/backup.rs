//! Backups: a consistent copy of the whole store, written while the server runs.
//!
//! One read transaction is a snapshot of every table at one commit, and readers never
//! block writers, so the copy neither stops deliveries nor catches a half-written state.
//! The copy is a fresh redb file holding the same tables, so restoring is putting it in
//! place of `stile.redb` while the server is stopped.

use std::borrow::Borrow;
use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::model::StoreError;

use super::{DbError, RedbStore, ReopenHint, tables};

/// Why a backup failed: reading the store, or writing the copy. Only the first says
/// anything about the data file; a full disk under the copy must not make the store
/// reopen its own file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading the snapshot failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the copy failed.
    #[error("cannot write the backup copy: {0}")]
    Target(DbError),
}

impl BackupError {
    pub(crate) fn target(err: impl Into<redb::Error>) -> Self {
        BackupError::Target(DbError(err.into()))
    }

    /// Whether the copy failed because the disk refused it (full, read-only).
    pub fn is_disk_full(&self) -> bool {
        match self {
            BackupError::Store(err) => err.is_storage_unavailable(),
            BackupError::Target(DbError(redb::Error::Io(io))) => {
                matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
            }
            BackupError::Target(_) => false,
        }
    }
}

impl ReopenHint for BackupError {
    fn needs_reopen(&self) -> bool {
        matches!(self, BackupError::Store(err) if err.needs_reopen())
    }
}

/// What a backup copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// Tables copied.
    pub tables: usize,
    /// Rows copied, all tables together.
    pub rows: u64,
}

impl RedbStore {
    /// Writes a consistent copy of the store to a new file at `path` (which must not
    /// exist) and syncs it to disk.
    pub fn backup_to(&self, path: &Path) -> Result<BackupSummary, BackupError> {
        self.copy_to(path, &|record| Ok(record.to_vec()))
    }

    /// Writes a consistent copy to a new file at `path`, each endpoint record passed
    /// through `endpoint` on its way (the copy that seals secrets stored in clear, so they
    /// never reach the new file in clear).
    pub(super) fn copy_to(&self, path: &Path, endpoint: &EndpointCopy<'_>) -> Result<BackupSummary, BackupError> {
        crate::store::file_modes::create_owner_only(path).map_err(|e| BackupError::target(redb::Error::Io(e)))?;
        // redb writes a new database into the empty file, keeping its mode.
        let target = Database::builder().create(path).map_err(BackupError::target)?;
        let summary = self.with_db(|db| {
            let from = db.begin_read().map_err(StoreError::from)?;
            let to = target.begin_write().map_err(BackupError::target)?;
            let summary = copy_every_table(&from, &to, endpoint)?;
            to.commit().map_err(BackupError::target)?;
            Ok::<_, BackupError>(summary)
        })?;
        drop(target);
        Ok(summary)
    }
}

/// What a copy does to each endpoint record (its stored bytes) on the way.
pub(super) type EndpointCopy<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, StoreError> + 'a;

/// Copies every table of [`tables`] from the snapshot into `to`.
fn copy_every_table(
    from: &ReadTransaction,
    to: &WriteTransaction,
    endpoint: &EndpointCopy<'_>,
) -> Result<BackupSummary, BackupError> {
    let mut summary = BackupSummary::default();
    let mut add = |rows: u64| {
        summary.tables += 1;
        summary.rows += rows;
    };
    add(copy(from, to, tables::META)?);
    add(copy(from, to, tables::BACKFILLS)?);
    add(copy(from, to, super::names::NAMES)?);
    add(copy(from, to, super::names::NAME_IDS)?);
    add(copy(from, to, tables::API_KEYS)?);
    add(copy(from, to, tables::APPS)?);
    add(copy(from, to, tables::APP_UIDS)?);
    add(copy(from, to, tables::DEFAULT_APPS)?);
    add(copy(from, to, tables::DELETED_APPS)?);
    add(copy_endpoints(from, to, endpoint)?);
    add(copy(from, to, tables::ENDPOINT_HEALTH)?);
    add(copy(from, to, tables::ENDPOINT_LABELS)?);
    add(copy(from, to, tables::ENDPOINT_SUBSCRIPTIONS)?);
    add(copy(from, to, tables::IDEMPOTENCY)?);
    add(copy(from, to, tables::IDEMPOTENCY_BY_AGE)?);
    add(copy(from, to, tables::EVENTS)?);
    add(copy(from, to, tables::EVENTS_BY_TYPE)?);
    add(copy(from, to, tables::EVENTS_BY_DATA_ID)?);
    add(copy(from, to, tables::EVENT_BODIES)?);
    add(copy(from, to, tables::EVENT_PENDING)?);
    add(copy(from, to, tables::EVENT_FAILURES)?);
    add(copy(from, to, tables::UNDELIVERED_HOLDS)?);
    add(copy(from, to, tables::PORTAL_SESSIONS)?);
    add(copy(from, to, tables::PORTAL_SESSIONS_BY_APP)?);
    add(copy(from, to, tables::ATTEMPTS)?);
    add(copy(from, to, tables::ENDPOINT_ATTEMPTS)?);
    add(copy(from, to, tables::EVENT_ATTEMPTS)?);
    add(copy(from, to, tables::DELIVERY_STATS)?);
    add(copy(from, to, tables::FAILED_ATTEMPTS)?);
    add(copy(from, to, tables::ENDPOINT_FAILURES)?);
    add(copy(from, to, tables::QUEUE)?);
    add(copy(from, to, tables::ENDPOINT_PENDING)?);
    add(copy(from, to, tables::PARKED_ATTEMPTS)?);
    add(copy(from, to, tables::VERIFICATION_SESSIONS)?);
    add(copy(from, to, tables::SESSION_EXPIRY)?);
    add(copy(from, to, tables::EVENT_TYPES)?);
    add(copy(from, to, tables::LISTENERS)?);
    add(copy(from, to, tables::REPLAYS)?);
    add(copy(from, to, tables::WATCHED_REPLAYS)?);
    add(copy(from, to, tables::REPLAY_DELIVERIES)?);
    add(copy(from, to, tables::SKIPPED_DELIVERIES)?);
    Ok(summary)
}

/// Copies the endpoints, each record through `endpoint`; returns the row count.
fn copy_endpoints(
    from: &ReadTransaction,
    to: &WriteTransaction,
    endpoint: &EndpointCopy<'_>,
) -> Result<u64, BackupError> {
    let source = from.open_table(tables::ENDPOINTS).map_err(StoreError::from)?;
    let mut target = to.open_table(tables::ENDPOINTS).map_err(BackupError::target)?;
    let mut rows = 0;
    for entry in source.iter().map_err(StoreError::from)? {
        let (key, value) = entry.map_err(StoreError::from)?;
        target.insert(key.value(), endpoint(value.value())?.as_slice()).map_err(BackupError::target)?;
        rows += 1;
    }
    Ok(rows)
}

/// Copies one table; returns its row count.
fn copy<K, V>(from: &ReadTransaction, to: &WriteTransaction, table: TableDefinition<K, V>) -> Result<u64, BackupError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: Borrow<K::SelfType<'a>>,
    for<'a> V::SelfType<'a>: Borrow<V::SelfType<'a>>,
{
    let source = from.open_table(table).map_err(StoreError::from)?;
    let mut target = to.open_table(table).map_err(BackupError::target)?;
    let mut rows = 0;
    for entry in source.iter().map_err(StoreError::from)? {
        let (key, value) = entry.map_err(StoreError::from)?;
        target.insert(key.value(), value.value()).map_err(BackupError::target)?;
        rows += 1;
    }
    Ok(rows)
}

/// Why a file is not a usable copy of a data file.
#[derive(Debug, thiserror::Error)]
pub enum NotADataFile {
    /// redb cannot open it.
    #[error("the file is not a readable data file: {0}")]
    Unreadable(#[from] DbError),
    /// It opens but holds no schema version.
    #[error("the file has no schema version")]
    NoSchema,
}

/// Opens a file as a data file and reads its schema version, so a truncated or garbled
/// copy is never kept as a backup.
pub fn check_data_file(path: &Path) -> Result<(), NotADataFile> {
    let unreadable = |err: redb::Error| NotADataFile::Unreadable(DbError(err));
    // Read-only: checking a file must not change it (opening it for writing can trim
    // it, and then its size is not the size that was written).
    let db = redb::ReadOnlyDatabase::open(path).map_err(|e| unreadable(e.into()))?;
    let tx = db.begin_read().map_err(|e| unreadable(e.into()))?;
    let meta = tx.open_table(tables::META).map_err(|_| NotADataFile::NoSchema)?;
    meta.get("schema_version").map_err(|e| unreadable(e.into()))?.ok_or(NotADataFile::NoSchema)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::backend::Apps;
    use crate::store::backend::Events;
    use redb::TableHandle;

    use super::*;
    use crate::mode::Mode;

    #[tokio::test]
    async fn a_backup_holds_every_table_of_the_store_and_opens_as_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("data")).unwrap();
        let event =
            crate::payload::new_event(store.test_owner(Mode::Test).await, "a.b", &serde_json::json!({"n": 1}), 5_000)
                .unwrap();
        let _ = store.publish_events(std::slice::from_ref(&event).to_vec(), 0).await.unwrap();
        let copy = dir.path().join("copy.redb");
        let summary = store.backup_to(&copy).unwrap();
        let names = |db: &Database| -> Vec<String> {
            let tx = db.begin_read().unwrap();
            let mut names: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
            names.sort();
            names
        };
        let restored = Database::open(&copy).unwrap();
        let original = store.with_db(|db| Ok::<_, StoreError>(names(db))).unwrap();
        assert_eq!(names(&restored), original, "no table is left out of the backup");
        assert_eq!(summary.tables, original.len());
        drop(restored);

        let restored_dir = dir.path().join("restored");
        std::fs::create_dir(&restored_dir).unwrap();
        std::fs::rename(&copy, restored_dir.join(crate::store::DATA_FILE_NAME)).unwrap();
        // Payloads are sealed: the backup opens only with the key beside it.
        let Err(err) = RedbStore::open(&restored_dir) else { panic!("a sealed backup opened without its key") };
        assert!(matches!(err, crate::store::OpenError::Key(crate::store::sealing::KeyError::Missing { .. })), "{err}");
        let key = crate::store::sealing::KEY_FILE_NAME;
        std::fs::copy(dir.path().join("data").join(key), restored_dir.join(key)).unwrap();
        let restored = RedbStore::open(&restored_dir).unwrap();
        let found = restored
            .event(store.test_owner(Mode::Test).await, event.meta.id)
            .await
            .unwrap()
            .expect("the event is in the backup");
        assert_eq!(
            found.body,
            store.event(store.test_owner(Mode::Test).await, event.meta.id).await.unwrap().unwrap().body
        );
    }

    #[tokio::test]
    async fn a_copy_that_cannot_be_written_is_a_target_error_and_leaves_the_store_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("data")).unwrap();
        let err = store.backup_to(&dir.path().join("no/such/dir/copy.redb")).unwrap_err();
        assert!(matches!(err, BackupError::Target(_)), "{err}");
        assert!(!err.needs_reopen(), "a failed copy says nothing about the data file");
        let event = crate::payload::new_event(store.test_owner(Mode::Test).await, "a.b", &serde_json::json!({}), 5_000)
            .unwrap();
        let _ = store.publish_events(std::slice::from_ref(&event).to_vec(), 0).await.unwrap();
        assert!(store.event(store.test_owner(Mode::Test).await, event.meta.id).await.unwrap().is_some());
    }
}
