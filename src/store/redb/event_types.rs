//! Event types created through the API, per mode. The catalogue
//! ([`crate::event_types::EventTypes`]) holds them in memory; this is where they last.

use redb::ReadableTable;

use crate::event_types::EventTypeRecord;
use crate::store::backend::EventTypes;
use crate::store::model::StoreError;

use super::{RedbStore, decode, encode, tables};

const TABLE: &str = "event_types";

impl EventTypes for RedbStore {
    async fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError> {
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

    async fn create_event_type(&self, record: EventTypeRecord) -> Result<bool, StoreError> {
        let bytes = encode(TABLE, &record)?;
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

    async fn replace_event_type(&self, record: EventTypeRecord) -> Result<(), StoreError> {
        let bytes = encode(TABLE, &record)?;
        self.write(|tx| {
            tx.open_table(tables::EVENT_TYPES)?
                .insert((record.mode.as_u8(), record.name.as_str()), bytes.as_slice())?;
            Ok(())
        })
    }
}
