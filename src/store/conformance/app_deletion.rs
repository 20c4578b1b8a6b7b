//! Deleting an application: gone at once, its history purged later in batches, and
//! nothing of another application touched.

use std::sync::Arc;

use crate::ids::{EventId, VerificationSessionId};
use crate::mode::Mode;
use crate::store::QueueWrites;
use crate::store::model::upkeep::Outcomes;
use crate::store::model::{
    ApiKeyRecord, AppDeletion, AttemptStatus, EndpointRecord, IdempotencyBegin, IdempotencyRecord, Owner,
    PortalSessionRecord, SessionStatus,
};

use super::sessions::{move_to, moved, session};
use super::{TestPolicy, app, each_backend, hook, invoices, result};

/// What an application's history is made of, in a test.
struct Made {
    endpoint: EndpointRecord,
    events: Vec<EventId>,
    session: VerificationSessionId,
}

/// A verification session of `owner` (due to expire in an hour); an endpoint with three
/// events: one delivered, one failed for good, one pending; an idempotency record, a key
/// restricted to the application and a portal session (under `hash`).
async fn populate(store: &QueueWrites, owner: Owner, hash: [u8; 32]) -> Made {
    let now = crate::clock::unix_now_ms();
    let session = session(owner, SessionStatus::RequiresInput, now, now + 3_600_000);
    store.create_session(session.clone(), moved(&session, now), now + 3_600_000, now).await.unwrap();
    let endpoint = hook(store, owner, "*").await;
    let events = invoices(owner, 3, now - 10);
    let (_, scheduled) = store.publish_events(events.clone(), now).await.unwrap();
    let mut results = Vec::new();
    for (n, k) in scheduled.keys()[..2].iter().enumerate() {
        results.push(result(store, *k, n == 0, now).await);
    }
    let policy = TestPolicy { retries: 0, disable_at: None, undelivered_hours: 72 };
    store.publish_and_record(Arc::from([].to_vec()), Arc::from(results), now, policy).await.unwrap();
    let record = IdempotencyRecord { fingerprint: "f".into(), status: 200, body: "{}".into(), created: 10 };
    store.put_idempotency_record(owner, "key".into(), record).await.unwrap();
    let key =
        ApiKeyRecord { prefix: format!("vk_test_{}", hash[0]), mode: owner.mode, created: 1, app: Some(owner.app) };
    store.insert_api_key(hash, key).await.unwrap();
    let portal = PortalSessionRecord {
        id: crate::ids::PortalSessionId::new(),
        app: owner.app,
        mode: owner.mode,
        created: 0,
        expires_at: i64::MAX,
        read_only: false,
    };
    store.insert_portal_session(hash, portal).await.unwrap();
    Made { endpoint, events: events.iter().map(|e| e.meta.id).collect(), session: session.id }
}

/// What the API shows of an application's history: each event's pending count and its
/// attempts' statuses, the endpoint's outcomes, whether its idempotency key is answered,
/// its session.
type History = (Vec<Option<(u32, Vec<AttemptStatus>)>>, Option<Outcomes>, bool, Option<SessionStatus>);

async fn history(store: &QueueWrites, owner: Owner, made: &Made) -> History {
    let stats = store.delivery_stats(owner, 0, i64::MAX / 2, 60, 10).await.unwrap();
    let answered = match store.begin_idempotent(owner, "key".into(), "f".into(), 11).await.unwrap() {
        IdempotencyBegin::Answered(_) => true,
        IdempotencyBegin::Run => {
            store.abandon_idempotent(owner, "key".into(), "f".into(), 11).await.unwrap(); // as a request that stored nothing
            false
        }
        IdempotencyBegin::InProgress => panic!("no request is running"),
    };
    let session = store.session(owner, made.session).await.unwrap().map(|s| s.status);
    let mut events = Vec::new();
    for id in &made.events {
        let Some(event) = store.event(owner, *id).await.unwrap() else {
            events.push(None);
            continue;
        };
        let attempts = store.event_attempts(owner, *id, 10).await.unwrap().0;
        events.push(Some((event.pending_webhooks, attempts.iter().map(|a| a.status).collect())));
    }
    (events, stats.endpoints.get(&made.endpoint.id).copied(), answered, session)
}

#[tokio::test]
async fn deleting_ends_pending_deliveries_at_once_and_the_purge_removes_the_history_of_that_app_only() {
    each_backend(async |store| {
        let default = store.test_owner(Mode::Test).await;
        let record = app(Mode::Test, Some("doomed"));
        store.create_app(record.clone()).await.unwrap().unwrap();
        let doomed = Owner { app: record.id, mode: Mode::Test };
        let kept = populate(&store, default, [1; 32]).await;
        let before = history(&store, default, &kept).await;
        assert_eq!(before.0.iter().flatten().map(|(pending, _)| *pending).collect::<Vec<_>>(), [0, 0, 1]);
        let made = populate(&store, doomed, [2; 32]).await;
        let doomed_history = history(&store, doomed, &made).await;
        assert_eq!(store.queue_depth().await.unwrap(), 2, "each application has one pending delivery");

        assert_eq!(store.delete_app(Mode::Test, default.app, 0).await.unwrap(), AppDeletion::IsDefault);
        assert_eq!(store.delete_app(Mode::Live, doomed.app, 0).await.unwrap(), AppDeletion::NotFound, "other mode");
        let deleted_at = crate::clock::unix_now_ms();
        let AppDeletion::Deleted { endpoints, deliveries_ended, keys_revoked, listeners, .. } =
            store.delete_app(Mode::Test, doomed.app, deleted_at).await.unwrap()
        else {
            panic!("deleted");
        };
        assert_eq!((endpoints, deliveries_ended, keys_revoked, listeners), (1, 1, 1, vec![]));
        assert_eq!(store.delete_app(Mode::Test, doomed.app, deleted_at).await.unwrap(), AppDeletion::NotFound);
        assert_eq!(store.queue_depth().await.unwrap(), 1, "its pending delivery left the queue at once");
        assert_eq!(store.app(Mode::Test, doomed.app).await.unwrap(), None);
        assert_eq!(store.endpoint(doomed, made.endpoint.id).await.unwrap(), None);
        assert_eq!(store.api_keys().await.unwrap().iter().map(|k| k.0[0]).collect::<Vec<_>>(), [1], "its key went");
        assert_eq!(store.portal_session([2; 32]).await.unwrap(), None, "its portal session went");
        assert!(store.portal_session([1; 32]).await.unwrap().is_some());
        assert_eq!(store.create_app(app(Mode::Test, Some("doomed"))).await.unwrap(), Ok(()), "its uid is free");
        // Its history is still there, the pending delivery ended, until it is purged; its
        // session no longer expires (with an event).
        let (events, _, answered, session) = history(&store, doomed, &made).await;
        assert!(answered && events.iter().all(|e| e.as_ref().is_some_and(|(pending, _)| *pending == 0)));
        assert_ne!(doomed_history.0[2], events[2]);
        let expire = move_to(SessionStatus::Expired, deleted_at + 3_600_000);
        assert_eq!(store.expire_due_sessions(deleted_at + 3_600_000, 10, expire).await.unwrap().0, 1, "the other's");
        assert_eq!(session, Some(SessionStatus::RequiresInput));
        assert_eq!(store.session(doomed, made.session).await.unwrap().unwrap().status, SessionStatus::RequiresInput);

        // Purged in batches of 2; remembered until it has settled.
        let mut batches = 0;
        loop {
            let purge = store.purge_deleted_apps(2, deleted_at).await.unwrap();
            batches += 1;
            assert_eq!(purge.finished, 0, "not settled yet");
            if purge.removed == 0 {
                break;
            }
            assert!(batches < 50, "the purge ends");
        }
        assert!(batches > 3, "several transactions: {batches}");
        assert_eq!(history(&store, doomed, &made).await, (vec![None; 3], None, false, None), "all gone");
        let expired = (before.0, before.1, before.2, Some(SessionStatus::Expired));
        assert_eq!(history(&store, default, &kept).await, expired, "the other application's is all there");
        let purge = store.purge_deleted_apps(2, deleted_at + 1).await.unwrap();
        assert_eq!((purge.removed, purge.finished), (0, 1));
        let purge = store.purge_deleted_apps(2, deleted_at + 1).await.unwrap();
        assert_eq!((purge.removed, purge.finished), (0, 0), "forgotten once settled");
    })
    .await;
}
