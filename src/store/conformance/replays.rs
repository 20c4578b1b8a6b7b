//! Replays: a step queues its deliveries and moves the replay in one commit, or does
//! nothing when the replay moved on; outcomes are counted once each; deliveries skipped
//! for a disabled endpoint are found until their window ends; a deleted application's
//! replays go.

use std::sync::Arc;

use crate::mode::Mode;
use crate::store::model::{
    AttemptStatus, DeliveryState, EndpointStatus, ReplayQuery, ReplayRecord, ReplayState, ReplayStatusFilter,
    ReplayStep, ReplayStepped,
};

use super::{NO_RETRIES, each_backend, failed_invoices, hook, invoices, result};

/// A running replay of `owner` of failed deliveries to any endpoint, made at `now`.
fn running(owner: crate::store::model::Owner, now: i64) -> ReplayRecord {
    let query = ReplayQuery {
        endpoints: vec![],
        event_types: vec![],
        created_after: None,
        created_before: now + 1,
        status: ReplayStatusFilter::Failed,
        filter: None,
    };
    ReplayRecord::new(owner, query, 2, now)
}

#[tokio::test]
async fn a_step_queues_once_and_outcomes_are_counted_once() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let events = failed_invoices(&store, owner, 2, now).await;
        let ids: Vec<_> = events.iter().map(|e| e.meta.id).collect();
        let states = store.delivery_states(owner, ids.clone(), now).await.unwrap();
        assert_eq!(states.len(), 2);
        assert!(
            states.iter().all(|(_, e, s)| *e == endpoint.id && *s == DeliveryState::Attempted(AttemptStatus::Failed))
        );

        let replay = running(owner, (now / 1000) as i64);
        store.insert_replay(replay.clone()).await.unwrap();
        let step = |from, to, end| ReplayStep { from, deliveries: vec![(ids[1], endpoint.id)], to: Some(to), end };
        let ReplayStepped::Moved(moved, queued) =
            store.replay_step(owner, replay.id, step(None, ids[1], false), now + 10, 24).await.unwrap()
        else {
            panic!("the first step moves the replay");
        };
        assert_eq!((moved.sent, moved.position, queued.len()), (1, Some(ids[1]), 1));
        // The same step again (a second process, or a pass after a crash that read the
        // replay before the commit) starts where the replay no longer is: nothing queued.
        let again = store.replay_step(owner, replay.id, step(None, ids[1], false), now + 10, 24).await.unwrap();
        assert!(matches!(again, ReplayStepped::Stale(ref r) if r.sent == 1), "{again:?}");
        assert_eq!(store.queue_depth().await.unwrap(), 1);
        let last =
            ReplayStep { from: Some(ids[1]), deliveries: vec![(ids[0], endpoint.id)], to: Some(ids[0]), end: true };
        assert!(matches!(
            store.replay_step(owner, replay.id, last, now + 20, 24).await.unwrap(),
            ReplayStepped::Moved(..)
        ));

        // Both under way: nothing counted, still running.
        let (view, unsettled) = store.settle_replay(owner, replay.id, 1).await.unwrap().unwrap();
        assert_eq!((view.succeeded, view.failed, unsettled, view.state), (0, 0, 2, ReplayState::Running));
        let due = store.due_entries(None, now + 100, 10, Vec::new()).await.unwrap();
        assert_eq!(due.len(), 2);
        let outcomes =
            vec![result(&store, due[0].key, true, now + 30).await, result(&store, due[1].key, false, now + 30).await];
        store.publish_and_record(Arc::from(&[][..]), Arc::from(outcomes), now + 30, NO_RETRIES).await.unwrap();
        let (view, unsettled) = store.settle_replay(owner, replay.id, 2).await.unwrap().unwrap();
        assert_eq!((view.succeeded, view.failed, unsettled), (1, 1, 0));
        assert_eq!((view.state, view.finished_at, view.watching), (ReplayState::Completed, Some(2), false));
        assert!(store.watched_replays().await.unwrap().is_empty(), "no longer watched");
        // Counted once: a later look changes nothing.
        let (view, _) = store.settle_replay(owner, replay.id, 3).await.unwrap().unwrap();
        assert_eq!((view.succeeded, view.failed, view.finished_at), (1, 1, Some(2)));
        let elsewhere = store.test_owner(Mode::Live).await;
        assert!(store.replay(elsewhere, replay.id).await.unwrap().is_none(), "another application's");
        assert!(store.settle_replay(elsewhere, replay.id, 3).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_disabled_endpoints_missed_deliveries_are_skipped_until_their_window_ends() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let mut endpoint = hook(&store, owner, "*").await;
        endpoint.status = EndpointStatus::Disabled;
        endpoint.undelivered_retention_hours = Some(2);
        let stored = endpoint.clone();
        store.update_endpoint(owner, endpoint.id, move |e| *e = stored).await.unwrap();
        let now = 1_700_000_000_000;
        let events = invoices(owner, 1, now);
        let (published, queued) = store.publish_events(events.clone(), now).await.unwrap();
        assert_eq!((published[0].deliveries, queued.len()), (0, 0), "nothing is queued for it");
        let ids = vec![events[0].meta.id];
        let states = store.delivery_states(owner, ids.clone(), now + 3_600_000).await.unwrap();
        assert_eq!(states, vec![(ids[0], endpoint.id, DeliveryState::Skipped)]);
        assert!(
            store.delivery_states(owner, ids.clone(), now + 2 * 3_600_000).await.unwrap().is_empty(),
            "window over"
        );
        let elsewhere = store.test_owner(Mode::Live).await;
        assert!(store.delivery_states(elsewhere, ids, now).await.unwrap().is_empty(), "another application's");
    })
    .await;
}

#[tokio::test]
async fn a_delivery_sent_meanwhile_or_to_an_endpoint_disabled_meanwhile_is_skipped_not_queued() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let events = failed_invoices(&store, owner, 2, now).await;
        // Matched as failed; then resent by hand before the step: pending, no longer failed.
        let resent = store.resend_event(owner, events[0].meta.id, Some(endpoint.id), now + 5, 24).await.unwrap();
        assert!(matches!(resent, crate::store::model::Resent::Scheduled(_)));
        let replay = running(owner, (now / 1000) as i64);
        store.insert_replay(replay.clone()).await.unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.meta.id).collect();
        let step = ReplayStep { from: None, deliveries: vec![(ids[0], endpoint.id)], to: Some(ids[0]), end: false };
        let ReplayStepped::Moved(moved, queued) =
            store.replay_step(owner, replay.id, step, now + 10, 24).await.unwrap()
        else {
            panic!("the step moves the replay");
        };
        assert_eq!((moved.sent, moved.skipped, queued.len()), (0, 1, 0), "sent meanwhile: not again");
        // Its endpoint disabled before the next step: the delivery would wait, parked.
        store.update_endpoint(owner, endpoint.id, |e| e.status = EndpointStatus::Disabled).await.unwrap();
        let step =
            ReplayStep { from: Some(ids[0]), deliveries: vec![(ids[1], endpoint.id)], to: Some(ids[1]), end: true };
        let ReplayStepped::Moved(moved, queued) =
            store.replay_step(owner, replay.id, step, now + 20, 24).await.unwrap()
        else {
            panic!("the step moves the replay");
        };
        assert_eq!((moved.sent, moved.skipped, moved.queued_all, queued.len()), (0, 2, true, 0));
        let (view, queued) = store.settle_replay(owner, replay.id, 5).await.unwrap().unwrap();
        assert_eq!((view.state, queued), (ReplayState::Completed, 0), "nothing of its own under way");
    })
    .await;
}
