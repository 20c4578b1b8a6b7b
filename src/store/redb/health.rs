//! Endpoint health as stored: each failing endpoint's current run of failed attempts.
//! When to disable an endpoint is the delivery policy's (`crate::delivery::policy`); what
//! follows from its answer is `rules::record`'s.

use redb::WriteTransaction;

use crate::ids::EndpointId;
use crate::store::model::{FailureRun, StoreError};

use super::tables;

/// A stored health row as a run of failures.
pub(super) fn run_of((since_ms, failures): (u64, u32)) -> FailureRun {
    FailureRun { since_ms, failures }
}

/// Forgets an endpoint's run of failures (it was enabled again by hand).
pub(super) fn reset(tx: &WriteTransaction, endpoint: EndpointId) -> Result<(), StoreError> {
    tx.open_table(tables::ENDPOINT_HEALTH)?.remove(endpoint.as_u128())?;
    Ok(())
}
