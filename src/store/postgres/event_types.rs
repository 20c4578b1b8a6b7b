//! The event type catalogue on Postgres.

use tokio_postgres::types::Json;

use crate::event_types::EventTypeRecord;
use crate::store::backend::EventTypes;
use crate::store::model::StoreError;

use super::PgStore;
use super::cached::Cached;

impl EventTypes for PgStore {
    async fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client.q("SELECT record FROM event_types ORDER BY mode, name", &[]).await?;
        Ok(rows.iter().map(|row| row.get::<_, Json<EventTypeRecord>>(0).0).collect())
    }

    async fn create_event_type(&self, record: EventTypeRecord) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let inserted = client
            .exec(
                "INSERT INTO event_types (mode, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&i16::from(record.mode.as_u8()), &record.name, &Json(&record)],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn replace_event_type(&self, record: EventTypeRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO event_types (mode, name, record) VALUES ($1, $2, $3)
                 ON CONFLICT (mode, name) DO UPDATE SET record = excluded.record",
                &[&i16::from(record.mode.as_u8()), &record.name, &Json(&record)],
            )
            .await?;
        Ok(())
    }
}
