//! Recovery: finding the events whose delivery to an endpoint failed for good, and
//! sending each once more.

use redb::ReadTransaction;

use crate::ids::{EndpointId, EventId};
use crate::store::backend::Recoveries;
use crate::store::model::upkeep::{Recoverable, recoverable};
use crate::store::model::{AttemptStatus, Owner, Recovery, StoreError};

use super::attempts::DeliveryTables;
use super::names::Names;
use super::{RedbStore, endpoints, tables};

/// What a recovery of an endpoint would resend ([`recoverable`]), from the latest attempt
/// per event among attempts made since `since` (Unix seconds), of events that still
/// exist. `None`: no such endpoint in this application.
fn failed_deliveries(
    tx: &ReadTransaction,
    names: &Names,
    owner: Owner,
    id: EndpointId,
    since: i64,
    now_ms: u64,
    default_hours: u32,
) -> Result<Option<Recoverable>, StoreError> {
    let (m, key) = (owner.app.as_u128(), id.as_u128());
    let Some(endpoint) = endpoints::get_in(&tx.open_table(tables::ENDPOINTS)?, owner.app, id)? else {
        return Ok(None);
    };
    let hours = endpoint.undelivered_retention_hours.unwrap_or(default_hours);
    let by_endpoint = tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
    let attempts = tx.open_table(tables::ATTEMPTS)?;
    let events = tx.open_table(tables::EVENTS)?;
    let start = crate::ids::first_id_at((since.max(0) as u64).saturating_mul(1000));
    // The latest attempt per event, in the order the events were first attempted.
    let mut latest: Vec<(EventId, AttemptStatus, i64, String)> = Vec::new();
    let mut position: std::collections::HashMap<EventId, usize> = std::collections::HashMap::new();
    for entry in by_endpoint.range((m, key, start)..=(m, key, u128::MAX))? {
        let attempt = entry?.0.value().2;
        let Some(record) = super::attempt_record::attempt_in(&attempts, attempt, names)? else { continue };
        match position.get(&record.event_id) {
            Some(&at) => (latest[at].1, latest[at].2) = (record.status, record.created),
            None => {
                position.insert(record.event_id, latest.len());
                latest.push((record.event_id, record.status, record.created, record.event_type));
            }
        }
    }
    // A pruned event has no body left to send.
    let mut existing = Vec::with_capacity(latest.len());
    for entry in latest {
        if entry.1 != AttemptStatus::Failed || events.get((m, entry.0.as_u128()))?.is_some() {
            existing.push(entry);
        }
    }
    Ok(Some(recoverable(existing, hours, now_ms)))
}

impl Recoveries for RedbStore {
    /// Resends to an endpoint every event whose delivery to it failed for good (its latest
    /// attempt to the endpoint is `failed`) among attempts made since `since` (Unix
    /// seconds), unless it failed longer ago than the endpoint keeps undelivered payloads
    /// (`default_hours` unless it sets its own). `dry_run` only counts. `None`: no such
    /// endpoint in this application.
    async fn recover_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Option<Recovery>, StoreError> {
        // The search reads a snapshot, so however many attempts it walks, publishing and
        // recording go on; only the resending takes the writer.
        let found = self.read(|tx| failed_deliveries(tx, &self.names, owner, id, since, now_ms, default_hours))?;
        let Some((failed, mut recovery)) = found else { return Ok(None) };
        if dry_run || failed.is_empty() {
            return Ok(Some(recovery));
        }
        self.write(|tx| {
            let Some(endpoint) = endpoints::get_in(&tx.open_table(tables::ENDPOINTS)?, owner.app, id)? else {
                return Ok(None); // deleted meanwhile
            };
            let mut t = DeliveryTables::open(tx, &self.names)?;
            for (event, event_type) in &failed {
                t.schedule(&endpoint, *event, event_type, 1, now_ms, &mut recovery.scheduled)?;
                t.add_pending(*event, 1)?;
            }
            Ok(Some(recovery))
        })
    }
}
