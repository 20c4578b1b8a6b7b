//! Endpoint health as stored: each failing endpoint's current run of failed attempts, and
//! the automatic disabling the delivery policy decides on. The store records decisions;
//! it makes none (see `crate::delivery::policy`).

use redb::WriteTransaction;

use super::tables;
use crate::ids::EndpointId;
use crate::store::model::{FailureRun, StoreError};

/// A stored health row as a run of failures.
pub(super) fn run_of((since_ms, failures): (u64, u32)) -> FailureRun {
    FailureRun { since_ms, failures }
}

/// Forgets an endpoint's run of failures (it was enabled again by hand).
pub(super) fn reset(tx: &WriteTransaction, endpoint: EndpointId) -> Result<(), StoreError> {
    tx.open_table(tables::ENDPOINT_HEALTH)?.remove(endpoint.as_u128())?;
    Ok(())
}
