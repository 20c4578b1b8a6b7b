//! The errors of the store, the same whichever backend keeps the data: a backend's own
//! failure is carried opaquely (only its message is shown).

use std::path::PathBuf;

use crate::store::redb::DbError;
use crate::store::{postgres, sealing};

/// Why the data file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {0}: {1}")]
    CreateDir(PathBuf, std::io::Error),
    /// Another process holds the file's lock.
    #[error(
        "the data file {0} is in use by another stile process; stop that process first, or point this one at another directory with --data-dir"
    )]
    InUse(PathBuf),
    /// The file was written by a newer stile with a layout this one does not know.
    #[error(
        "the data file {path} has schema version {found}, but this stile only knows versions up to {known}; upgrade stile"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        found: u64,
        /// The newest this build knows.
        known: u64,
    },
    /// redb could not open the file (corrupt, unreadable, ...).
    #[error("cannot open the data file {0}: {1}")]
    Database(PathBuf, DbError),
    /// Reading or writing the schema record failed.
    #[error("cannot initialise the data file {0}: {1}")]
    Init(PathBuf, StoreError),
    /// The payload key is missing, wrong or unusable.
    #[error(transparent)]
    Key(#[from] sealing::KeyError),
    /// The Postgres database could not be reached or set up.
    #[error("cannot use the postgres database {database}: {problem}")]
    Postgres {
        /// `host:port/database` (never the password).
        database: String,
        /// What went wrong.
        problem: String,
    },
}

/// A failure inside the store. These are never the caller's fault, so the API answers
/// them with a 500 (or a 503 when the disk is full or read-only).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored record does not decode: the file was damaged or written by other code.
    #[error("corrupt record in table {table}: {source}")]
    Corrupt {
        /// The table the record is in.
        table: &'static str,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// A stored key holds a value no record can have (a mode byte that names no mode).
    #[error("corrupt key in table {table}")]
    BadKey {
        /// The table the key is in.
        table: &'static str,
    },
    /// The data file is closed after an I/O error and could not be opened again yet.
    #[error("the data file is unavailable after a storage error: {0}")]
    Unavailable(String),
    /// A record could not be encoded.
    #[error("cannot encode a record for table {table}: {source}")]
    Encode {
        /// The table the record was for.
        table: &'static str,
        /// What the encoder said.
        source: serde_json::Error,
    },
    /// A sealed value does not open with the payload key.
    #[error(transparent)]
    Sealed(#[from] sealing::OpenError),
    /// The Postgres database failed, or could not be reached.
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    /// The database's schema was migrated by a newer stile.
    #[error("the database has schema version {found}, but this stile only knows versions up to {known}; upgrade stile")]
    NewerSchema {
        /// The version found.
        found: u64,
        /// The newest this build knows.
        known: u64,
    },
    /// The operation belongs to the other backend (a redb file's compaction, say).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the failure is the storage refusing work for now (a full or read-only disk,
    /// a database that is unreachable or restarting), which is worth a 503 and a retry
    /// later rather than a 500.
    pub fn is_storage_unavailable(&self) -> bool {
        match self {
            StoreError::Db(err) => err.is_unavailable(),
            StoreError::Unavailable(_) => true,
            StoreError::Postgres(err) => err.is_unavailable(),
            _ => false,
        }
    }
}
