//! One step of a replay: the deliveries it matched since its last step, each queued again
//! as a resend to its endpoint, and where the replay stands after them, in one
//! transaction. A step that commits moved the replay's position with what it queued; one
//! that does not queued nothing. So a replay resumed after a crash starts after the last
//! committed step and never queues a delivery twice, and two processes stepping the same
//! replay cannot both queue a step (the second finds the replay moved on). Counting what
//! the replay's deliveries did is a rule too ([`settle`]).

use crate::ids::{EndpointId, EventId, ReplayId};
use crate::store::model::{
    AttemptStatus, Owner, ReplayRecord, ReplayState, ReplayStep, ReplayStepped, Resent, Scheduled, StoreError,
};

use super::resend::{ResendTx, resend};

/// What a step of a replay needs of a backend beyond resending, inside one write
/// transaction.
pub(crate) trait ReplayTx: ResendTx {
    /// The replay, kept from other writers until the commit (`None`: no such replay).
    async fn replay_for_update(&mut self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError>;

    /// Saves the replay as changed.
    async fn save_replay(&mut self, record: &ReplayRecord) -> Result<(), StoreError>;

    /// Records that the replay queued `event` again to `endpoint`, so its outcome is
    /// counted in the replay's.
    async fn note_replayed(&mut self, replay: ReplayId, event: EventId, endpoint: EndpointId)
    -> Result<(), StoreError>;

    /// The deliveries the replay queued whose outcome is not counted yet, each with the
    /// status of its latest attempt (`None`: its event was pruned with its attempts).
    async fn replayed(
        &mut self,
        replay: ReplayId,
    ) -> Result<Vec<(EventId, EndpointId, Option<AttemptStatus>)>, StoreError>;

    /// Forgets deliveries whose outcome is counted.
    async fn forget_replayed(&mut self, replay: ReplayId, done: &[(EventId, EndpointId)]) -> Result<(), StoreError>;
}

/// Takes `step` of `owner`'s replay `id` at `now_ms` (payloads kept `default_hours` after a
/// failure unless the endpoint sets its own window).
pub(crate) async fn step(
    tx: &mut impl ReplayTx,
    owner: Owner,
    id: ReplayId,
    step: ReplayStep,
    now_ms: u64,
    default_hours: u32,
) -> Result<ReplayStepped, StoreError> {
    let Some(mut replay) = tx.replay_for_update(owner, id).await? else { return Ok(ReplayStepped::Gone) };
    if replay.state != ReplayState::Running || replay.queued_all || replay.position != step.from {
        return Ok(ReplayStepped::Stale(replay));
    }
    let mut scheduled = Scheduled::default();
    for (event, endpoint) in step.deliveries {
        match resend(tx, owner, event, Some(endpoint), now_ms, default_hours).await? {
            Resent::Scheduled(queued) => {
                scheduled.extend(queued);
                tx.note_replayed(id, event, endpoint).await?;
                replay.sent += 1;
            }
            Resent::NoEvent | Resent::NoEndpoint | Resent::PayloadExpired { .. } => replay.skipped += 1,
        }
    }
    replay.position = step.to.or(replay.position);
    replay.queued_all = step.end;
    tx.save_replay(&replay).await?;
    Ok(ReplayStepped::Moved(replay, scheduled))
}

/// Counts the outcomes of `owner`'s replay `id` at `now` (Unix seconds): each delivery it
/// queued that has ended since the last count (succeeded, or failed for good) is counted
/// and forgotten, so each count reads only what is still under way. Returns the replay as
/// it is now and how many of its deliveries are still under way; `None`: no such replay.
pub(crate) async fn settle(
    tx: &mut impl ReplayTx,
    owner: Owner,
    id: ReplayId,
    now: i64,
) -> Result<Option<(ReplayRecord, u64)>, StoreError> {
    let Some(mut replay) = tx.replay_for_update(owner, id).await? else { return Ok(None) };
    let (mut succeeded, mut failed, mut unsettled) = (0, 0, 0);
    let mut done = Vec::new();
    for (event, endpoint, status) in tx.replayed(id).await? {
        match status {
            Some(AttemptStatus::Succeeded) => succeeded += 1,
            Some(AttemptStatus::Failed) => failed += 1,
            Some(AttemptStatus::Pending | AttemptStatus::Retrying) => {
                unsettled += 1;
                continue;
            }
            // Pruned with its event: it ended long ago, one way or the other.
            None => {}
        }
        done.push((event, endpoint));
    }
    tx.forget_replayed(id, &done).await?;
    replay.settle(succeeded, failed, unsettled, now);
    tx.save_replay(&replay).await?;
    Ok(Some((replay, unsettled)))
}
