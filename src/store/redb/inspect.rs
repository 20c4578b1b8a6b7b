//! What the data file holds, table by table, for `stile inspect`: rows, and the bytes of
//! the B-tree (values and keys stored, its own metadata, space lost to fragmentation).

use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

use crate::store::model::{OpenError, StoreError};

use super::DbError;

/// One table's rows and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUsage {
    /// The table's name (see `tables.rs`).
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Bytes of keys and values stored in its leaves.
    pub stored_bytes: u64,
    /// Bytes of the tree's own structure (branch pages, headers).
    pub metadata_bytes: u64,
    /// Bytes allocated to its pages but unused.
    pub fragmented_bytes: u64,
    /// The height of its B-tree.
    pub tree_height: u32,
}

impl TableUsage {
    /// Every byte the table's pages take.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

/// Every table of the data file at `path` with its rows and bytes, largest first, read
/// from one consistent snapshot. The file is opened read-only: nothing is migrated, so a
/// file of an earlier layout is shown as that layout left it, and no payload key is
/// needed. The one write it may take is redb's own crash repair, for a file whose server
/// was killed, which any open does. A file a server has open is refused
/// ([`OpenError::InUse`]).
pub fn inspect_file(path: &Path) -> Result<Vec<TableUsage>, OpenError> {
    let open_error = |err: redb::DatabaseError| match err {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(path.to_path_buf()),
        other => OpenError::Database(path.to_path_buf(), DbError(other.into())),
    };
    let usage = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => usage_of(&db),
        Err(redb::DatabaseError::RepairAborted) => usage_of(&redb::Database::open(path).map_err(open_error)?),
        Err(err) => return Err(open_error(err)),
    };
    let mut usage = usage.map_err(|err| OpenError::Init(path.to_path_buf(), err))?;
    usage.sort_by(|a, b| b.total_bytes().cmp(&a.total_bytes()).then_with(|| a.name.cmp(&b.name)));
    Ok(usage)
}

/// Every table of `db` with its rows and bytes, from one snapshot.
fn usage_of(db: &impl ReadableDatabase) -> Result<Vec<TableUsage>, StoreError> {
    let tx = db.begin_read()?;
    let mut out = Vec::new();
    for handle in tx.list_tables()? {
        let name = handle.name().to_string();
        let table = tx.open_untyped_table(handle)?;
        let stats = table.stats()?;
        out.push(TableUsage {
            name,
            rows: table.len()?,
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: stats.metadata_bytes(),
            fragmented_bytes: stats.fragmented_bytes(),
            tree_height: stats.tree_height(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::RedbStore;
    use crate::store::backend::Apps;
    use crate::store::backend::Events;

    #[tokio::test]
    async fn every_table_is_listed_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let owner = store.test_owner(Mode::Test).await;
        let events: Vec<_> = (0..3)
            .map(|n| {
                let data = serde_json::json!({"id": format!("vks_{n}")});
                crate::payload::new_event(owner, "a.b", &data, crate::clock::unix_now_ms()).unwrap()
            })
            .collect();
        let _ = store.publish_events(events.to_vec(), crate::clock::unix_now_ms()).await.unwrap();
        let path = store.path().to_path_buf();
        assert!(matches!(inspect_file(&path), Err(OpenError::InUse(_))), "the store has it open");
        let missing = dir.path().join("none/stile.redb");
        assert!(matches!(inspect_file(&missing), Err(OpenError::Database(..))), "no file: an error, none created");
        assert!(!missing.parent().unwrap().exists());
        drop(store);
        let before = std::fs::read(&path).unwrap();
        let usage = inspect_file(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before, "inspecting writes nothing");
        let rows = |name: &str| usage.iter().find(|t| t.name == name).map(|t| t.rows);
        assert_eq!(rows("events_by_app"), Some(3));
        assert!(rows("names").is_some_and(|n| n >= 1), "the event type, numbered");
        assert_eq!(rows("events_by_type_hash"), Some(3));
        assert_eq!(rows("events_by_data_id_hash"), Some(3));
        assert_eq!(rows("event_bodies"), Some(3));
        assert!(rows("meta").is_some_and(|n| n >= 1));
        let bodies = usage.iter().find(|t| t.name == "event_bodies").unwrap();
        assert!(bodies.stored_bytes > 3 * 20, "{bodies:?}");
        assert!(usage.windows(2).all(|w| w[0].total_bytes() >= w[1].total_bytes()), "largest first");
    }
}
