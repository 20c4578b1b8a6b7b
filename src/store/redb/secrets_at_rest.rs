//! Sealing the endpoint secrets an earlier release stored in clear, once, at start.
//!
//! redb never overwrites a page in place: a record rewritten sealed leaves its clear
//! version in a freed page of the file until that page is reused, and a copy that is
//! sealed after it is written has the same problem. So the file is copied anew with each
//! endpoint record sealed on its way into the copy (the clear text never reaches the new
//! file), and the copy takes the old file's place. A crash before the rename leaves the
//! old file as it was (the next start does it again; a copy left behind is removed); after
//! it, the new file is whole. It needs free disk space for one copy of the data file.

use redb::ReadableTable;

use crate::store::model::endpoints::upgrade_at_rest;
use crate::store::model::{EndpointRecord, StoreError};

use super::apps::TABLE;
use super::backup::BackupError;
use super::{RedbStore, decode, encode, open_database, tables};

/// What the copy is called while it is written (beside the data file).
const COPY_SUFFIX: &str = "sealing";

impl RedbStore {
    /// Seals every endpoint secret stored in clear (and renames listener endpoints an
    /// earlier release called by characters of their key), writing the file anew if there
    /// is any (see the module doc). Returns how many endpoints changed.
    pub(super) fn seal_clear_secrets(&mut self) -> Result<usize, StoreError> {
        let copy = self.path.with_extension(COPY_SUFFIX);
        // A copy an interrupted start left: it may hold clear secrets of its own.
        match std::fs::remove_file(&copy) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(err)),
            _ => {}
        }
        let changed = self.read(|tx| {
            let mut changed = 0;
            for row in tx.open_table(tables::ENDPOINTS)?.iter()? {
                let (_, value) = row?;
                let mut record: EndpointRecord = decode(TABLE, value.value())?;
                changed += usize::from(upgrade_at_rest(&mut record, &self.sealer)?);
            }
            Ok(changed)
        })?;
        if changed == 0 {
            return Ok(0);
        }
        let sealer = self.sealer.clone();
        let upgrade = |bytes: &[u8]| -> Result<Vec<u8>, StoreError> {
            let mut record: EndpointRecord = decode(TABLE, bytes)?;
            upgrade_at_rest(&mut record, &sealer)?;
            encode(TABLE, &record)
        };
        let swapped = self.copy_to(&copy, &upgrade).map_err(|err| match err {
            BackupError::Store(err) => err,
            BackupError::Target(err) => StoreError::Db(err),
        });
        let swapped = swapped.and_then(|_| self.replace_file_with(&copy));
        if swapped.is_err() {
            let _ = std::fs::remove_file(&copy);
        }
        swapped.map(|()| changed)
    }

    /// Puts the file at `copy` in the data file's place and opens it.
    fn replace_file_with(&self, copy: &std::path::Path) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle holds the file's lock: closed before the copy takes its place.
        // (Nothing else runs yet: this is the start, before the store is handed out.)
        guard.take();
        std::fs::rename(copy, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        *guard = Some(open_database(&self.path, self.cache_mib).map_err(db_error)?);
        Ok(())
    }
}

fn db_error(err: redb::DatabaseError) -> StoreError {
    StoreError::Db(super::DbError(err.into()))
}

fn io(err: std::io::Error) -> StoreError {
    StoreError::Db(super::DbError(redb::Error::Io(err)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::backend::Apps;
    use crate::store::backend::Endpoints;
    use crate::store::model::SigningSecret;

    /// Endpoints written as an earlier release wrote them: secrets in clear.
    async fn clear_endpoints(store: &RedbStore, n: usize) -> Vec<String> {
        let owner = store.test_owner(Mode::Test).await;
        let mut secrets = Vec::new();
        store
            .write(|tx| {
                let mut table = tx.open_table(tables::ENDPOINTS)?;
                for i in 0..n {
                    let mut record = EndpointRecord::for_test(owner, "https://example.com/hook", "*");
                    let secret = format!("whsec_{i:040}");
                    let clear: SigningSecret =
                        serde_json::from_value(serde_json::json!({"secret": secret, "expires_at": null})).unwrap();
                    record.secrets = vec![clear];
                    record.description = Some("x".repeat(400));
                    table.insert((owner.app.as_u128(), record.id.as_u128()), encode(TABLE, &record)?.as_slice())?;
                    secrets.push(secret);
                }
                Ok(())
            })
            .unwrap();
        secrets
    }

    #[tokio::test]
    async fn no_secret_stays_in_clear_anywhere_in_the_file_however_many_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbStore::open(dir.path()).unwrap();
        let secrets = clear_endpoints(&store, 600).await;
        let before = std::fs::read(&store.path).unwrap();
        assert!(before.windows(6).any(|w| w == b"whsec_"), "the test wrote them in clear");

        assert_eq!(store.seal_clear_secrets().unwrap(), 600);
        let after = std::fs::read(&store.path).unwrap();
        assert!(!after.windows(6).any(|w| w == b"whsec_"), "a secret is in the file in clear");
        assert!(!store.path.with_extension(COPY_SUFFIX).exists(), "the copy took the file's place");
        let owner = store.test_owner(Mode::Test).await;
        let page = store
            .list_endpoints(
                owner,
                crate::store::model::pagination::PageRequest {
                    limit: 100,
                    cursor: crate::store::model::pagination::Cursor::Start,
                },
                Default::default(),
            )
            .await;
        for record in page.unwrap().items {
            assert!(secrets.contains(&record.current_secret(&store.sealer).unwrap()));
        }
        assert_eq!(store.seal_clear_secrets().unwrap(), 0, "sealed once");
    }
}
