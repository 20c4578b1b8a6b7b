//! Ending the pending deliveries of an endpoint that goes (deleted, or its application
//! deleted): each pending attempt leaves the queue `failed`, saying why, without being
//! made, and its event counts one unfinished delivery fewer.

use crate::ids::EndpointId;
use crate::store::model::{AttemptRecord, AttemptStatus, StoreError};

/// What ending an endpoint's deliveries needs of a backend, inside one write transaction.
pub(crate) trait CancelTx {
    /// The endpoint's pending attempts, each taken off the queue (and held by this
    /// transaction where others could take it too).
    async fn take_pending(&mut self, endpoint: EndpointId) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Stores an attempt that ended without being made: the record, filed among the
    /// failures, its event's count of unfinished deliveries and its failed flag.
    fn store_ended(&mut self, record: AttemptRecord) -> Result<(), StoreError>;
}

/// Ends `endpoint`'s pending deliveries at `now` (Unix seconds) for `reason`; returns how
/// many there were.
pub(crate) async fn end_pending(
    tx: &mut impl CancelTx,
    endpoint: EndpointId,
    reason: &str,
    now: i64,
) -> Result<usize, StoreError> {
    let pending = tx.take_pending(endpoint).await?;
    let ended = pending.len();
    for mut record in pending {
        record.status = AttemptStatus::Failed;
        record.error = Some(reason.to_string());
        record.created = now;
        tx.store_ended(record)?;
    }
    Ok(ended)
}
