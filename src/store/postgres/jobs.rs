//! What the engine needs to make an attempt, read on Postgres in one snapshot.

use std::collections::HashMap;

use tokio_postgres::types::Json;

use crate::ids::DeliveryId;
use crate::store::backend::Jobs;
use crate::store::model::{EndpointRecord, Job, StoreError};

use super::attempts::{ATTEMPT_COLUMN_COUNT, ATTEMPT_COLUMNS, attempt_of};
use super::cached::Cached;
use super::events::{EVENT_COLUMNS, body_of, meta_of};
use super::{PgStore, uuid};

impl Jobs for PgStore {
    async fn jobs(&self, attempt_ids: Vec<DeliveryId>) -> Result<Vec<Option<Job>>, StoreError> {
        let ids: Vec<uuid::Uuid> = attempt_ids.iter().map(|id| uuid(id.as_u128())).collect();
        let client = self.client().await?;
        let columns: String = ATTEMPT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, en.record, {EVENT_COLUMNS} FROM attempts a
             LEFT JOIN endpoints en ON en.app = a.app AND en.id = a.endpoint
             LEFT JOIN events e ON e.app = a.app AND e.id = a.event
             WHERE a.id = ANY($1)"
        );
        let rows = client.q(&sql, &[&ids]).await?;
        let mut found: HashMap<DeliveryId, Job> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let attempt = attempt_of(row)?;
            // After the attempt's columns: the endpoint's record, then the event's.
            let endpoint = row.get::<_, Option<Json<EndpointRecord>>>(ATTEMPT_COLUMN_COUNT).map(|j| j.0);
            let event_at = ATTEMPT_COLUMN_COUNT + 1;
            let (body, trace) = match row.get::<_, Option<uuid::Uuid>>(event_at) {
                Some(_) => {
                    let meta = meta_of(row, event_at)?;
                    (Some(body_of(&self.sealer, &meta, row.get(event_at + 6))?).filter(|b| !b.is_empty()), meta.trace)
                }
                None => (None, None),
            };
            found.insert(attempt.id, Job { attempt, endpoint, body, trace });
        }
        Ok(attempt_ids.iter().map(|id| found.remove(id)).collect())
    }
}
