//! The store as the rest of stile sees it: one type, [`Store`], whatever keeps the data.
//!
//! Its methods are written by `backend!` from the backend traits (`backend.rs`), where
//! each is documented once. The methods below are the ones that only make sense for one
//! data file (its path, compaction, a file backup), each saying what another backend does
//! instead.

use std::path::Path;
use std::sync::Arc;

use crate::store::model::{OpenError, StoreError};
use crate::store::redb::{BackupError, BackupSummary, StoreOptions};

use super::RedbStore;

/// The store: the data of one stile deployment, in whichever backend keeps it.
pub enum Store {
    /// One redb file in the data directory (the default; one process).
    Redb(Arc<RedbStore>),
    /// A Postgres database (any number of processes).
    Postgres(Box<super::postgres::PgStore>),
}

impl Store {
    /// Opens (or creates) the redb data file in `dir` with the default settings.
    pub fn open(dir: &Path) -> Result<Store, OpenError> {
        RedbStore::open(dir).map(|store| Store::Redb(Arc::new(store)))
    }

    /// Opens (or creates) the redb data file in `dir` with these settings.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Store, OpenError> {
        RedbStore::open_with(dir, options).map(|store| Store::Redb(Arc::new(store)))
    }

    /// The redb data file's path (`None` on Postgres), for what reports its size.
    pub fn data_file(&self) -> Option<&Path> {
        match self {
            Store::Redb(store) => Some(store.path()),
            Store::Postgres(_) => None,
        }
    }

    /// Where the data is, for people: the data file, or `postgres host:port/database`
    /// (never a password).
    pub fn describe(&self) -> String {
        match self {
            Store::Redb(store) => format!("data file  {}", store.path().display()),
            Store::Postgres(store) => format!("database   postgres {}", store.database()),
        }
    }

    /// Makes what is committed durable now (redb commits retention batches without
    /// fsync; every Postgres commit is durable already).
    pub async fn persist(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(store) => store.blocking(RedbStore::persist).await,
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Rewrites the data file to release free pages (`stile compact`).
    pub fn compact(self) -> Result<bool, StoreError> {
        match self {
            Store::Redb(store) => Arc::try_unwrap(store)
                .map_err(|_| StoreError::Unavailable("the data file is in use by the server".into()))?
                .compact(),
            Store::Postgres(_) => Err(StoreError::Unsupported(
                "`stile compact` rewrites a redb data file; on Postgres, autovacuum reclaims space (or run VACUUM)",
            )),
        }
    }

    /// Writes a consistent copy of the data file to `path` (`stile backup`).
    pub fn backup_to(&self, path: &Path) -> Result<BackupSummary, BackupError> {
        match self {
            Store::Redb(store) => store.backup_to(path),
            Store::Postgres(_) => Err(BackupError::Store(StoreError::Unsupported(
                "this server keeps its data in Postgres: back it up with pg_dump (or the database's own backups), not `stile backup`",
            ))),
        }
    }
}
