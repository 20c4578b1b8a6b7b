//! Retention: what a pruning pass removes, and what it keeps because it is still in use.

use std::sync::Arc;

use crate::clock::unix_now_ms;
use crate::mode::Mode;
use crate::store::QueueWrites;
use crate::store::model::upkeep::Outcomes;
use crate::store::model::{
    AttemptResult, AttemptStatus, Cutoffs, IdempotencyBegin, IdempotencyRecord, PruneCursor, Pruned, SessionStatus,
};

use super::sessions::{move_to, moved, session};
use super::{NO_RETRIES, TestPolicy, each_backend, hook, invoices, result, start};

/// Prunes in batches of `limit` until a batch says nothing is left; the pass's counts.
async fn prune_pass(store: &QueueWrites, cutoffs: Cutoffs, limit: usize) -> (Pruned, usize) {
    let (mut cursor, mut total) = (PruneCursor::default(), Pruned::default());
    for batches in 1..=50 {
        let (pruned, next) = store.prune(cutoffs, cursor, limit).await.unwrap();
        cursor = next;
        total += pruned;
        if !pruned.more {
            return (total, batches);
        }
    }
    panic!("a pass ends");
}

/// Cutoffs that leave nothing of history made before `history_ms`, at that time.
fn at(history_ms: u64) -> Cutoffs {
    Cutoffs { history_ms, idempotency_secs: 0, now_ms: history_ms }
}

#[tokio::test]
async fn a_pass_in_small_batches_removes_every_trace_of_finished_history_and_keeps_what_is_pending() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = unix_now_ms();
        let events = invoices(owner, 7, now);
        let (_, scheduled) = store.publish_events(events.clone(), now).await.unwrap();
        // Six attempts finish (three succeed, three fail for good, with no window for
        // undelivered payloads); one stays pending.
        let mut results: Vec<AttemptResult> = Vec::new();
        for (n, key) in scheduled.keys()[..6].iter().enumerate() {
            results.push(result(&store, *key, n % 2 == 0, now - 120_000).await);
        }
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now, NO_RETRIES).await.unwrap();
        let record = IdempotencyRecord { fingerprint: "f".into(), status: 200, body: "{}".into(), created: 10 };
        store.put_idempotency_record(owner, "old-key".into(), record).await.unwrap();
        let stats = async || store.delivery_stats(owner, 0, (now / 1000) as i64 + 60, 60, 10).await.unwrap();
        let before = stats().await;
        assert_eq!(before.endpoints[&endpoint.id], Outcomes { succeeded: 3, failed: 3, filtered: 0 });
        assert_eq!((before.recent_failures.len(), before.pending[&endpoint.id]), (3, 1));

        let cutoffs = Cutoffs { idempotency_secs: 11, ..at(now + 60_000) };
        let (total, batches) = prune_pass(&store, cutoffs, 2).await;
        assert!(batches >= 3, "batches of 2 take several transactions, took {batches}");
        assert_eq!(total.removed(), 6 + 6 + 2 + 1, "6 attempts, 6 events, 2 stats rows, 1 idempotency record");
        assert_eq!((total.attempts, total.events, total.stats, total.idempotency), (6, 6, 2, 1));
        let left = store.list_attempts(owner, endpoint.id, start(10), None).await.unwrap().items;
        assert_eq!(left.iter().map(|a| a.status).collect::<Vec<_>>(), [AttemptStatus::Pending], "it stays");
        let listed = store.list_events(owner, start(10), Default::default()).await.unwrap().items;
        assert_eq!(listed.iter().map(|e| e.meta.id).collect::<Vec<_>>(), [left[0].event_id], "its event stays");
        let typed = crate::store::model::EventFilter { event_type: Some("invoice.paid".into()), ..Default::default() };
        assert_eq!(
            store.list_events(owner, start(10), typed).await.unwrap().items.len(),
            1,
            "and only its index entry"
        );
        for event in events.iter().filter(|e| e.meta.id != left[0].event_id) {
            assert!(store.event(owner, event.meta.id).await.unwrap().is_none());
            assert!(store.event_attempts(owner, event.meta.id, 10).await.unwrap().0.is_empty());
        }
        let after = stats().await;
        assert!(after.endpoints.is_empty() && after.buckets.is_empty() && after.recent_failures.is_empty());
        assert_eq!(after.pending[&endpoint.id], 1);
        assert_eq!(
            store.begin_idempotent(owner, "old-key".into(), "f".into(), 12).await.unwrap(),
            IdempotencyBegin::Run
        );
        assert_eq!(store.queue_depth().await.unwrap(), 1);
        // A second pass finds nothing.
        assert_eq!(store.prune(cutoffs, PruneCursor::default(), 2).await.unwrap().0.removed(), 0);
    })
    .await;
}

#[tokio::test]
async fn an_attempt_made_after_the_cutoff_goes_with_its_event() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        // An event of ten minutes ago whose (only) attempt was made just now.
        let now = unix_now_ms();
        let event = &invoices(owner, 1, now - 600_000)[0];
        let (_, scheduled) = store.publish_events(std::slice::from_ref(event).to_vec(), now).await.unwrap();
        let made = result(&store, scheduled.keys()[0], true, now).await;
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&[made][..]), now, NO_RETRIES).await.unwrap();

        let cutoffs = Cutoffs { history_ms: now - 300_000, idempotency_secs: 0, now_ms: now };
        let pruned = store.prune(cutoffs, PruneCursor::default(), 100).await.unwrap().0;
        assert_eq!((pruned.events, pruned.attempts), (1, 1), "an attempt outlived its event");
        assert!(store.list_attempts(owner, endpoint.id, start(10), None).await.unwrap().items.is_empty());
        assert!(store.event_attempts(owner, event.meta.id, 10).await.unwrap().0.is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_undelivered_payload_outlives_retention_for_its_endpoints_window_only() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let mut endpoint = crate::store::model::EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        endpoint.undelivered_retention_hours = Some(2);
        store.insert_endpoint(endpoint).await.unwrap();
        let now = unix_now_ms();
        let events = invoices(owner, 2, now);
        let (_, scheduled) = store.publish_events(events.clone(), now).await.unwrap();
        // One succeeds, one fails for good; the policy's window is longer than the
        // endpoint's.
        let mut results: Vec<AttemptResult> = Vec::new();
        for (n, key) in scheduled.keys().iter().enumerate() {
            results.push(result(&store, *key, n == 0, now).await);
        }
        let policy = TestPolicy { undelivered_hours: 72, ..NO_RETRIES };
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now, policy).await.unwrap();

        // Past the general retention, within the endpoint's 2 hours: only the held one stays.
        let hour = 3_600_000;
        assert_eq!(store.prune(at(now + hour), PruneCursor::default(), 10).await.unwrap().0.events, 1);
        assert!(store.event(owner, events[0].meta.id).await.unwrap().is_none());
        let held = store.event(owner, events[1].meta.id).await.unwrap();
        assert!(held.is_some_and(|e| e.body == events[1].body), "the undelivered payload is still readable");
        // Once the window has passed it goes.
        assert_eq!(store.prune(at(now + 2 * hour), PruneCursor::default(), 10).await.unwrap().0.events, 1);
        assert!(store.event(owner, events[1].meta.id).await.unwrap().is_none());
        assert_eq!(store.prune(at(now + 3 * hour), PruneCursor::default(), 10).await.unwrap().0.removed(), 0);
    })
    .await;
}

#[tokio::test]
async fn ended_verification_sessions_are_pruned_and_open_ones_kept_until_they_end() {
    each_backend(async |store| {
        let now = unix_now_ms();
        let expires_ms = now + 3_600_000;
        let mut sessions = Vec::new();
        for (n, status) in SessionStatus::ALL.into_iter().enumerate() {
            let record = session(store.test_owner([Mode::Test, Mode::Live][n % 2]).await, status, now, expires_ms);
            store.create_session(record.clone(), moved(&record, now), expires_ms, now).await.unwrap();
            sessions.push(record);
        }
        let prune_all =
            async || prune_pass(&store, Cutoffs { idempotency_secs: 0, ..at(unix_now_ms() + 1) }, 1).await.0.sessions;
        assert_eq!(prune_all().await, 4, "the four ended sessions go");
        for session in &sessions {
            let found = store.session(session.owner(), session.id).await.unwrap();
            assert_eq!(found.is_some(), session.is_open(), "{}", session.status);
        }
        assert_eq!(store.next_session_expiry().await.unwrap(), Some(expires_ms), "the open ones still expire");

        // When due, the open sessions expire; once expired, the next pass prunes them too.
        let (expired, _) =
            store.expire_due_sessions(expires_ms, 100, move_to(SessionStatus::Expired, expires_ms)).await.unwrap();
        assert_eq!(expired, 2);
        assert_eq!(store.next_session_expiry().await.unwrap(), None);
        assert_eq!(prune_all().await, 2);
        for session in &sessions {
            assert_eq!(store.session(session.owner(), session.id).await.unwrap(), None);
        }
    })
    .await;
}

#[tokio::test]
async fn a_key_stored_again_after_expiry_keeps_its_new_record() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Live).await;
        let old = IdempotencyRecord { fingerprint: "a".into(), status: 200, body: "{}".into(), created: 10 };
        let new = IdempotencyRecord { created: 5_000, ..old.clone() };
        store.put_idempotency_record(owner, "k".into(), old).await.unwrap();
        store.put_idempotency_record(owner, "k".into(), new.clone()).await.unwrap();
        let cutoffs = Cutoffs { history_ms: 0, idempotency_secs: 100, now_ms: 0 };
        let pruned = store.prune(cutoffs, PruneCursor::default(), 10).await.unwrap().0;
        assert_eq!(pruned.idempotency, 0);
        assert_eq!(
            store.begin_idempotent(owner, "k".into(), "a".into(), 5_001).await.unwrap(),
            IdempotencyBegin::Answered(new)
        );
        // Backends differ here by design: redb files each record in an index by age too,
        // and drops the old record's stale entry; Postgres keeps the age in the row.
        assert_eq!(pruned.stale_entries, usize::from(store.is_redb()), "the stale index entry went");
    })
    .await;
}

#[tokio::test]
async fn the_operational_applications_history_is_pruned_too() {
    each_backend(async |store| {
        // The operational application has no record; its events and their attempts go
        // as every application's do.
        let ops = crate::store::model::Owner {
            app: crate::store::model::apps::operational_app(Mode::Live),
            mode: Mode::Live,
        };
        hook(&store, ops, "*").await;
        let now = unix_now_ms();
        let (_, scheduled) = store.publish_events(invoices(ops, 3, now - 120_000), now - 120_000).await.unwrap();
        let mut results = Vec::new();
        for key in scheduled.keys() {
            results.push(result(&store, *key, true, now - 120_000).await);
        }
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now, NO_RETRIES).await.unwrap();
        assert_eq!(store.list_events(ops, start(10), Default::default()).await.unwrap().items.len(), 3);
        let (total, _) = prune_pass(&store, at(now), 10).await;
        assert_eq!((total.events, total.attempts), (3, 3), "{total:?}");
        assert!(store.list_events(ops, start(10), Default::default()).await.unwrap().items.is_empty());
    })
    .await;
}
