//! Event types created through the API, per mode. The catalogue
//! ([`crate::event_types::EventTypes`]) holds them in memory; this is where they last.

use redb::ReadableTable;

use super::{RedbStore, decode, encode, tables};
use crate::event_types::EventTypeRecord;
use crate::store::backend::EventTypes;
use crate::store::model::StoreError;

const TABLE: &str = "event_types";

impl EventTypes for RedbStore {
    fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError> {
        self.read(|tx| {
            let table = tx.open_table(tables::EVENT_TYPES)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                out.push(decode(TABLE, value.value())?);
            }
            Ok(out)
        })
    }

    fn create_event_type(&self, record: &EventTypeRecord) -> Result<bool, StoreError> {
        let bytes = encode(TABLE, record)?;
        self.write(|tx| {
            let mut table = tx.open_table(tables::EVENT_TYPES)?;
            let key = (record.mode.as_u8(), record.name.as_str());
            if table.get(key)?.is_some() {
                return Ok(false);
            }
            table.insert(key, bytes.as_slice())?;
            Ok(true)
        })
    }

    fn replace_event_type(&self, record: &EventTypeRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, record)?;
        self.write(|tx| {
            tx.open_table(tables::EVENT_TYPES)?
                .insert((record.mode.as_u8(), record.name.as_str()), bytes.as_slice())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    #[test]
    fn types_are_stored_per_mode_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let record = |mode| EventTypeRecord {
            name: "order.paid".into(),
            mode,
            description: "An order was paid.".into(),
            schema: Some(serde_json::json!({"type": "object"})),
            example: None,
            archived: false,
            created: 7,
            updated: None,
        };
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert!(store.create_event_type(&record(Mode::Test)).unwrap());
            assert!(!store.create_event_type(&record(Mode::Test)).unwrap(), "a name is taken once per mode");
            assert!(store.create_event_type(&record(Mode::Live)).unwrap(), "the other mode has its own");
            store.replace_event_type(&EventTypeRecord { archived: true, ..record(Mode::Test) }).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let mut stored = store.event_types().unwrap();
        stored.sort_by_key(|r| r.mode.as_u8());
        assert_eq!(stored, vec![EventTypeRecord { archived: true, ..record(Mode::Test) }, record(Mode::Live)]);
    }
}
