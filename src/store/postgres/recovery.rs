//! Recovery on Postgres: queueing again the deliveries an endpoint failed since a time.

use crate::ids::{EndpointId, EventId, first_id_at};
use crate::store::backend::Recoveries;
use crate::store::model::upkeep::recoverable;
use crate::store::model::{AttemptStatus, Owner, Recovery, StoreError};

use super::attempts::{Writes, status_code};
use super::cached::Cached;
use super::endpoints::{Lock, get_in};
use super::{PgStore, id_of, uuid};

impl Recoveries for PgStore {
    /// Resends to an endpoint every event whose latest attempt to it, among attempts made
    /// since `since`, failed for good, unless that was longer ago than the endpoint keeps
    /// undelivered payloads. `dry_run` only counts. `None`: no such endpoint.
    async fn recover_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Option<Recovery>, StoreError> {
        transaction!(self, |tx| {
            let Some(endpoint) = get_in(tx, owner.app, id, Lock::KeyShare).await? else { return Ok(None) };
            let hours = endpoint.undelivered_retention_hours.unwrap_or(default_hours);
            let start = uuid(first_id_at((since.max(0) as u64).saturating_mul(1000)));
            // The latest attempt per event since `since`, in the order the events were
            // first attempted, of events that still exist.
            let rows = tx
                .q(
                    "SELECT l.event, l.event_type, l.status, l.created FROM (
                         SELECT DISTINCT ON (a.event) a.event, a.event_type, a.status, a.created,
                             first_value(a.id) OVER (PARTITION BY a.event ORDER BY a.id) AS first
                         FROM attempts a WHERE a.app = $1 AND a.endpoint = $2 AND a.id >= $3
                         ORDER BY a.event, a.id DESC) l
                     JOIN events e ON e.app = $1 AND e.id = l.event
                     WHERE l.status = $4 ORDER BY l.first",
                    &[&uuid(owner.app.as_u128()), &uuid(id.as_u128()), &start, &status_code(AttemptStatus::Failed)],
                )
                .await?;
            let latest = rows.iter().map(|row| {
                (EventId(id_of(row.get(0))), AttemptStatus::Failed, row.get::<_, i64>(3), row.get::<_, String>(1))
            });
            let (failed, mut recovery) = recoverable(latest, hours, now_ms);
            if dry_run || failed.is_empty() {
                return Ok(Some(recovery));
            }
            let mut writes = Writes::new(&self.token);
            for (event, event_type) in &failed {
                writes.schedule(&endpoint, *event, event_type, 1, now_ms, &mut recovery.scheduled);
                writes.add_pending(owner.app, *event, 1);
            }
            writes.flush(tx).await?;
            Ok(Some(recovery))
        })
        .await
    }
}
