//! Sealing the endpoint secrets an earlier release stored in clear, once, at start.
//!
//! redb never overwrites a page in place: a record rewritten sealed leaves its clear
//! version in a freed page of the file until that page is reused. So the file is written
//! anew: everything is copied into a fresh file (as a backup is), the secrets are sealed
//! there, and the fresh file takes the old one's place. A crash before the rename leaves
//! the old file as it was (the next start does it again); after it, the new file is whole.

use redb::ReadableTable;

use super::backup::BackupError;
use super::endpoints::{EndpointRecord, TABLE};
use super::{RedbStore, StoreError, decode, encode, open_database, tables};

/// What the fresh file is called while it is written (beside the data file).
const FRESH_SUFFIX: &str = "sealing";

impl RedbStore {
    /// Seals every endpoint secret stored in clear, writing the file anew if there is any
    /// (see the module doc). Returns how many endpoints had one.
    pub(super) fn seal_clear_secrets(&mut self) -> Result<usize, StoreError> {
        let clear = self.read(|tx| {
            let mut clear = 0;
            for row in tx.open_table(tables::ENDPOINTS)?.iter()? {
                let (_, value) = row?;
                let record: EndpointRecord = decode(TABLE, value.value())?;
                clear += usize::from(record.secrets.iter().any(|s| !s.secret.is_sealed()));
            }
            Ok(clear)
        })?;
        if clear == 0 {
            return Ok(0);
        }
        let fresh = self.path.with_extension(FRESH_SUFFIX);
        match std::fs::remove_file(&fresh) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(err)),
            _ => {}
        }
        self.backup_to(&fresh).map_err(|err| match err {
            BackupError::Store(err) => err,
            BackupError::Target(err) => StoreError::Db(err),
        })?;
        let sealed = {
            let db = open_database(&fresh, self.cache_mib).map_err(db_error)?;
            let tx = db.begin_write()?;
            let mut sealed = 0;
            {
                let mut table = tx.open_table(tables::ENDPOINTS)?;
                let mut changed = Vec::new();
                for row in table.iter()? {
                    let (key, value) = row?;
                    let mut record: EndpointRecord = decode(TABLE, value.value())?;
                    if record.upgrade_at_rest(&self.sealer)? {
                        changed.push((key.value(), encode(TABLE, &record)?));
                    }
                }
                for (key, bytes) in &changed {
                    table.insert(*key, bytes.as_slice())?;
                }
                sealed += changed.len();
            }
            tx.commit()?;
            sealed
        };
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle holds the file's lock: closed before the new file takes its place.
        guard.take();
        std::fs::rename(&fresh, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        *guard = Some(open_database(&self.path, self.cache_mib).map_err(db_error)?);
        Ok(sealed)
    }
}

fn db_error(err: redb::DatabaseError) -> StoreError {
    StoreError::Db(super::DbError(err.into()))
}

fn io(err: std::io::Error) -> StoreError {
    StoreError::Db(super::DbError(redb::Error::Io(err)))
}
