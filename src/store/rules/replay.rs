//! One step of a replay: the deliveries it matched since its last step, each queued again
//! as a resend to its endpoint, and where the replay stands after them, in one
//! transaction. A step that commits moved the replay's position with what it queued; one
//! that does not queued nothing. So a replay resumed after a crash starts after the last
//! committed step and never queues a delivery twice, and two processes stepping the same
//! replay cannot both queue a step (the second finds the replay moved on). Counting what
//! the replay's deliveries did is a rule too ([`settle`]).

use std::collections::HashMap;

use crate::ids::{EndpointId, EventId, ReplayId};
use crate::store::model::{
    AttemptStatus, DeliveryState, EndpointStatus, Owner, ReplayRecord, ReplayState, ReplayStep, ReplayStepped, Resent,
    Scheduled, StoreError,
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
    /// status and number of its latest attempt (`None`: its event was pruned with its
    /// attempts).
    async fn replayed(
        &mut self,
        replay: ReplayId,
    ) -> Result<Vec<(EventId, EndpointId, Option<(AttemptStatus, u32)>)>, StoreError>;

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
    let mut enabled = HashMap::new();
    for (event, endpoint) in step.deliveries {
        // Matched outside the transaction: what changed since is looked at again. A
        // disabled (or deleted) endpoint's delivery would only wait, parked; one that
        // another resend, a retry or `recover` sent meanwhile no longer matches.
        let sendable = match enabled.get(&endpoint) {
            Some(sendable) => *sendable,
            None => {
                let found = tx.endpoint(owner, endpoint).await?;
                let sendable = found.is_some_and(|e| e.status == EndpointStatus::Enabled);
                *enabled.entry(endpoint).or_insert(sendable)
            }
        };
        let latest = tx.latest_per_endpoint(owner, event).await?;
        let state =
            latest.get(&endpoint).map_or(DeliveryState::Skipped, |(status, _)| DeliveryState::Attempted(*status));
        if !sendable || !replay.query.status.takes(state) {
            replay.skipped += 1;
            continue;
        }
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
/// it is now and how many of its deliveries wait for their first attempt (what paces it:
/// a retry waits for its schedule, not for the replay); `None`: no such replay. Saves
/// nothing when nothing changed.
pub(crate) async fn settle(
    tx: &mut impl ReplayTx,
    owner: Owner,
    id: ReplayId,
    now: i64,
) -> Result<Option<(ReplayRecord, u64)>, StoreError> {
    let Some(mut replay) = tx.replay_for_update(owner, id).await? else { return Ok(None) };
    let (mut succeeded, mut failed, mut unsettled, mut queued) = (0, 0, 0, 0);
    let mut done = Vec::new();
    for (event, endpoint, latest) in tx.replayed(id).await? {
        match latest {
            Some((AttemptStatus::Succeeded, _)) => succeeded += 1,
            Some((AttemptStatus::Failed, _)) => failed += 1,
            Some((AttemptStatus::Pending | AttemptStatus::Retrying, number)) => {
                unsettled += 1;
                queued += u64::from(number == 1);
                continue;
            }
            // Pruned with its event: it ended long ago, one way or the other.
            None => {}
        }
        done.push((event, endpoint));
    }
    let before = replay.clone();
    replay.settle(succeeded, failed, unsettled, now);
    if !done.is_empty() || replay != before {
        tx.forget_replayed(id, &done).await?;
        tx.save_replay(&replay).await?;
    }
    Ok(Some((replay, queued)))
}
