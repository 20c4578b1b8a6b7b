//! Endpoint health as stored: each failing endpoint's current run of failed attempts, and
//! the automatic disabling the delivery policy decides on. The store records decisions;
//! it makes none (see `crate::delivery::policy`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables;
use crate::ids::EndpointId;
use crate::store::model::{FailureRun, StoreError};

/// The health entries of the endpoints in one batch of results, read once and written
/// once per batch (a batch is often hundreds of attempts to a few endpoints).
pub(super) struct HealthBatch<'txn> {
    table: Table<'txn, u128, (u64, u32)>,
    /// Endpoint → (its run as read, its run after the results seen so far).
    seen: HashMap<EndpointId, (Option<FailureRun>, Option<FailureRun>)>,
}

impl<'txn> HealthBatch<'txn> {
    pub(super) fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self { table: tx.open_table(tables::ENDPOINT_HEALTH)?, seen: HashMap::new() })
    }

    /// The endpoint's run of failures so far in this batch.
    pub(super) fn current(&mut self, endpoint: EndpointId) -> Result<Option<FailureRun>, StoreError> {
        let slot = match self.seen.entry(endpoint) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let stored = self.table.get(endpoint.as_u128())?.map(|v| run_of(v.value()));
                slot.insert((stored, stored))
            }
        };
        Ok(slot.1)
    }

    /// Sets the endpoint's run after an attempt ([`HealthBatch::current`] first).
    pub(super) fn set(&mut self, endpoint: EndpointId, run: Option<FailureRun>) {
        if let Some(slot) = self.seen.get_mut(&endpoint) {
            slot.1 = run;
        }
    }

    /// Writes what changed (a healthy endpoint that stayed healthy costs no write).
    pub(super) fn save(mut self) -> Result<(), StoreError> {
        for (endpoint, (stored, now)) in self.seen {
            match now {
                _ if now == stored => None,
                Some(run) => self.table.insert(endpoint.as_u128(), (run.since_ms, run.failures))?,
                None => self.table.remove(endpoint.as_u128())?,
            };
        }
        Ok(())
    }
}

/// A stored health row as a run of failures.
pub(super) fn run_of((since_ms, failures): (u64, u32)) -> FailureRun {
    FailureRun { since_ms, failures }
}

/// Forgets an endpoint's run of failures (it was enabled again by hand).
pub(super) fn reset(tx: &WriteTransaction, endpoint: EndpointId) -> Result<(), StoreError> {
    tx.open_table(tables::ENDPOINT_HEALTH)?.remove(endpoint.as_u128())?;
    Ok(())
}
