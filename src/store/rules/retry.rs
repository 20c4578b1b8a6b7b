//! Retrying an attempt now (`POST .../attempts/:id/retry`): a pending attempt, or the
//! queued retry of one that failed, moves to the front of the queue. One whose endpoint is
//! disabled stays parked; one that ended (succeeded, failed for good) has nothing queued.

use crate::ids::{DeliveryId, EndpointId};
use crate::store::model::{AttemptRecord, AttemptStatus, Owner, QueueKey, RetryNow, Scheduled, StoreError};

/// What retrying an attempt now needs of a backend, inside one write transaction.
pub(crate) trait RetryNowTx {
    /// Attempt `id` (held by this transaction where others could change it too).
    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError>;

    /// The queued attempt that retries `failed`: the same event to the same endpoint,
    /// numbered next, still pending (held as [`RetryNowTx::attempt`] holds one).
    async fn queued_retry_of(&mut self, failed: &AttemptRecord) -> Result<Option<AttemptRecord>, StoreError>;

    /// Whether `attempt`'s queue entry is parked (its endpoint disabled).
    async fn is_parked(&mut self, attempt: &AttemptRecord) -> Result<bool, StoreError>;

    /// Moves `attempt`'s queue entry from `before` to its `due_ms` and stores the record;
    /// the entry's new key.
    async fn requeue(&mut self, before: QueueKey, attempt: &AttemptRecord) -> Result<QueueKey, StoreError>;
}

/// Moves attempt `id` of `owner`'s `endpoint` (or the retry queued after it) to the front
/// of the queue, due at `now_ms`.
pub(crate) async fn retry_now(
    tx: &mut impl RetryNowTx,
    owner: Owner,
    endpoint: EndpointId,
    id: DeliveryId,
    now_ms: u64,
) -> Result<RetryNow, StoreError> {
    let named = tx.attempt(id).await?.filter(|r| r.app == owner.app && r.endpoint_id == endpoint);
    let Some(named) = named else { return Ok(RetryNow::NoSuchAttempt) };
    let mut target = match named.status {
        AttemptStatus::Pending => named,
        AttemptStatus::Retrying => match tx.queued_retry_of(&named).await? {
            Some(retry) => retry,
            None => return Ok(RetryNow::NotScheduled(named.status)),
        },
        ended => return Ok(RetryNow::NotScheduled(ended)),
    };
    if tx.is_parked(&target).await? {
        return Ok(RetryNow::EndpointDisabled);
    }
    let before = target.queue_key();
    target.due_ms = now_ms;
    target.created = (now_ms / 1000) as i64;
    let key = tx.requeue(before, &target).await?;
    let mut scheduled = Scheduled::default();
    scheduled.push(key);
    Ok(RetryNow::Moved(Box::new(target), scheduled))
}
