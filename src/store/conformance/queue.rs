//! The queue as one process sees it: due entries, parking and unparking, running a retry
//! now, and listener endpoints' attempts. (Claims between processes on one database are
//! Postgres's own: `postgres/tests.rs`.)

use std::sync::Arc;

use crate::mode::Mode;
use crate::store::model::endpoints::ListenerInfo;
use crate::store::model::{AttemptStatus, EndpointRecord, EndpointStatus, ListenRequest, QueueKey, RetryNow};

use super::{TWO_RETRIES, TestPolicy, each_backend, hook, invoices, result};

#[tokio::test]
async fn due_entries_come_in_due_order_each_once_to_a_scan_that_moves_on() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let (_, queued) = store.publish_events(invoices(owner, 4, now), now).await.unwrap();
        let (_, later) = store.publish_events(invoices(owner, 1, now), now + 5_000).await.unwrap();
        let mut keys = queued.keys().to_vec();
        keys.sort();
        assert_eq!(store.queue_depth().await.unwrap(), 5);
        assert_eq!(store.next_due_after(None, Vec::new()).await.unwrap(), Some(now));
        assert!(store.due_entries(None, now - 1, 10, Vec::new()).await.unwrap().is_empty(), "nothing is due yet");

        let first = store.due_entries(None, now, 3, Vec::new()).await.unwrap();
        assert_eq!(first.iter().map(|e| e.key).collect::<Vec<_>>(), keys[..3]);
        assert!(first.iter().all(|e| (e.endpoint, e.app) == (endpoint.id, owner.app)));
        let last_seen = Some(first[2].key);
        let rest = store.due_entries(last_seen, now, 10, Vec::new()).await.unwrap();
        assert_eq!(rest.iter().map(|e| e.key).collect::<Vec<_>>(), keys[3..], "the rest, not what was read");
        assert!(store.due_entries(Some(rest[0].key), now, 10, Vec::new()).await.unwrap().is_empty());
        assert_eq!(
            store.next_due_after(Some(rest[0].key), Vec::new()).await.unwrap(),
            Some(now + 5_000),
            "the later one"
        );
        let at_last = store.due_entries(Some(rest[0].key), now + 5_000, 10, Vec::new()).await.unwrap();
        assert_eq!(at_last.iter().map(|e| e.key).collect::<Vec<_>>(), later.keys());
        assert_eq!(store.queue_depth().await.unwrap(), 5, "reading the queue takes nothing off it");
    })
    .await;
}

#[tokio::test]
async fn retries_of_a_disabled_endpoint_wait_parked_until_it_is_enabled() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let policy = TestPolicy { disable_at: Some(2), ..TWO_RETRIES };
        let now = 1_700_000_000_000;
        let published = invoices(owner, 3, now);
        let (_, queued) = store.publish_events(published.clone(), now).await.unwrap();
        let (keys, third) = (&queued.keys()[..2], queued.keys()[2]);
        // Two failures in a row: the second disables the endpoint, so its retry is parked
        // at once; the first's retry was queued before and is parked when it comes up.
        let mut results = Vec::new();
        for k in keys.iter() {
            results.push(result(&store, *k, false, now).await);
        }
        let written = store.publish_and_record(Arc::from(&[][..]), Arc::from(results), now, policy).await.unwrap();
        assert_eq!(written.recorded.scheduled.len(), 1);
        assert_eq!(written.recorded.disabled, 1, "the second result disabled the endpoint");
        let disabled = store.endpoint(owner, endpoint.id).await.unwrap().unwrap();
        assert_eq!((disabled.status, disabled.disabled_reason.as_deref()), (EndpointStatus::Disabled, Some("failing")));
        let deliverable = |e: &EndpointRecord| e.status == EndpointStatus::Enabled;
        let mut due: Vec<QueueKey> = written.recorded.scheduled.keys().to_vec();
        due.push(third);
        assert!(store.park(due, deliverable).await.unwrap().is_empty(), "nothing stays queued");
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        for event in &published {
            let pending = store.event(owner, event.meta.id).await.unwrap().unwrap().pending_webhooks;
            assert_eq!(pending, 1, "parked deliveries are still pending");
        }
        let parked = store.retry_now(owner, endpoint.id, third.attempt(), now).await.unwrap();
        assert!(matches!(parked, RetryNow::EndpointDisabled), "{parked:?}");
        assert!(store.unpark(now).await.unwrap().is_empty(), "a disabled endpoint's retries stay parked at start-up");
        assert!(store.unpark_endpoint(endpoint.id, now).await.unwrap().is_empty());

        let enable = |e: &mut EndpointRecord| e.status = EndpointStatus::Enabled;
        let other_change = store.update_endpoint_and_resume(owner, endpoint.id, now + 1, false, enable).await.unwrap();
        assert!(other_change.unwrap().resumed.is_empty(), "only a change that asks to resume resumes");
        let disable = |e: &mut EndpointRecord| e.status = EndpointStatus::Disabled;
        store.update_endpoint(owner, endpoint.id, disable).await.unwrap();
        let updated =
            store.update_endpoint_and_resume(owner, endpoint.id, now + 2, true, enable).await.unwrap().unwrap();
        assert_eq!((updated.endpoint.status, updated.endpoint.failing), (EndpointStatus::Enabled, None));
        let mut resumed = updated.resumed.keys().to_vec();
        resumed.sort();
        assert_eq!(resumed.len(), 3);
        assert!(resumed.iter().all(|k| k.due_ms() == now + 2), "due when it was enabled");
        assert_eq!(
            store.due_entries(None, now + 2, 10, Vec::new()).await.unwrap().iter().map(|e| e.key).collect::<Vec<_>>(),
            resumed
        );
        // Parked by the scheduler while enabled (as for a listener with no CLI): back at
        // the next start.
        assert!(store.park(resumed[..1].to_vec(), |_| false).await.unwrap().is_empty());
        assert_eq!(store.unpark(now + 3).await.unwrap().len(), 1);
        assert_eq!(store.queue_depth().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_retry_runs_now_when_asked_by_its_attempt_or_the_one_it_follows() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let (_, queued) = store.publish_events(invoices(owner, 2, now), now).await.unwrap();
        let [failed, succeeded] = [queued.keys()[0], queued.keys()[1]];
        let results = [result(&store, failed, false, now).await, result(&store, succeeded, true, now).await];
        let retry = store
            .publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now, TWO_RETRIES)
            .await
            .unwrap()
            .recorded
            .scheduled
            .keys()[0];
        assert_eq!(retry.due_ms(), now + 1_000);

        let moved = |outcome| match outcome {
            RetryNow::Moved(record, scheduled) => (record.id, record.due_ms, scheduled.keys().to_vec()),
            other => panic!("not moved: {other:?}"),
        };
        // By the failed attempt: its retry moves.
        let (id, due, keys) = moved(store.retry_now(owner, endpoint.id, failed.attempt(), now + 10).await.unwrap());
        assert_eq!((id, due, keys), (retry.attempt(), now + 10, vec![QueueKey::new(now + 10, retry.attempt())]));
        // By the pending attempt itself.
        let (id, due, _) = moved(store.retry_now(owner, endpoint.id, retry.attempt(), now + 20).await.unwrap());
        assert_eq!((id, due), (retry.attempt(), now + 20));
        let due = store.due_entries(None, now + 100_000, 10, Vec::new()).await.unwrap();
        assert_eq!(due.iter().map(|e| e.key).collect::<Vec<_>>(), [QueueKey::new(now + 20, retry.attempt())]);
        let succeeded = store.retry_now(owner, endpoint.id, succeeded.attempt(), now).await.unwrap();
        assert!(matches!(succeeded, RetryNow::NotScheduled(AttemptStatus::Succeeded)), "{succeeded:?}");
        let elsewhere = hook(&store, owner, "*").await;
        let wrong = store.retry_now(owner, elsewhere.id, retry.attempt(), now).await.unwrap();
        assert!(matches!(wrong, RetryNow::NoSuchAttempt), "{wrong:?}");
        let other_mode = store.test_owner(Mode::Live).await;
        let wrong = store.retry_now(other_mode, endpoint.id, retry.attempt(), now).await.unwrap();
        assert!(matches!(wrong, RetryNow::NoSuchAttempt), "{wrong:?}");
    })
    .await;
}

#[tokio::test]
async fn a_listener_endpoints_attempts_wait_parked_until_its_cli_connects() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let request =
            ListenRequest { forward_to: "http://localhost:3000/hook".into(), events: vec!["*".into()], now: 1 };
        let make = move || {
            let mut record = EndpointRecord::for_test(owner, "http://localhost:3000/hook", "*");
            record.listener = Some(ListenerInfo { key_hash: hex::encode([7; 32]), last_seen: 1 });
            record
        };
        let (endpoint, made) = store.listener_endpoint(owner, [7; 32], request.clone(), make).await.unwrap();
        assert!(made && endpoint.is_listener());
        let again = ListenRequest { now: 5, ..request.clone() };
        let (found, made) = store.listener_endpoint(owner, [7; 32], again, || panic!("made twice")).await.unwrap();
        assert_eq!((found.id, made, found.listener.map(|l| l.last_seen)), (endpoint.id, false, Some(5)));

        let now = 1_700_000_000_000;
        let (_, queued) = store.publish_events(invoices(owner, 2, now), now).await.unwrap();
        assert!(store.park(queued.keys().to_vec(), |e| !e.is_listener()).await.unwrap().is_empty());
        assert!(store.unpark(now).await.unwrap().is_empty(), "no CLI is connected at start-up");
        assert_eq!(store.unpark_endpoint(endpoint.id, now + 1).await.unwrap().len(), 2, "its CLI connected");
        assert_eq!(store.queue_depth().await.unwrap(), 2);

        assert_eq!(store.idle_listeners(6).await.unwrap(), vec![(owner, endpoint.id)]);
        store.touch_listener(owner, endpoint.id, 10).await.unwrap();
        assert!(store.idle_listeners(6).await.unwrap().is_empty(), "used since");
        assert!(store.delete_endpoint(owner, endpoint.id, 11).await.unwrap());
        assert!(store.idle_listeners(i64::MAX).await.unwrap().is_empty());
        let (_, made) = store.listener_endpoint(owner, [7; 32], request, make).await.unwrap();
        assert!(made, "a deleted listener endpoint is made anew");
    })
    .await;
}

#[tokio::test]
async fn the_writers_first_attempts_are_born_with_the_jobs_the_store_reads_back() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let unborn = store.publish_and_record(Arc::from(invoices(owner, 1, now)), Arc::from(&[][..]), now, TWO_RETRIES);
        assert!(unborn.await.unwrap().first_attempts.take_born().is_empty(), "no engine took them");
        store.bear_births();
        let events = Arc::from(invoices(owner, 3, now));
        let written = store.publish_and_record(events, Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        let mut first = written.first_attempts;
        let born = first.take_born();
        assert_eq!(born.iter().map(|b| b.entry.key).collect::<Vec<_>>(), first.keys(), "every one is born");
        for b in &born {
            assert_eq!((b.entry.endpoint, b.entry.app, b.entry.key.due_ms()), (endpoint.id, owner.app, now));
            let read = store.jobs(vec![b.entry.key.attempt()]).await.unwrap().pop().flatten().unwrap();
            assert_eq!(b.job.attempt, read.attempt);
            assert_eq!(b.job.endpoint, read.endpoint);
            assert_eq!(b.job.body, read.body, "the payload as a job read back sends it");
            assert_eq!(b.job.trace, read.trace);
        }
        let ids: Vec<_> = born.iter().map(|b| b.entry.key.attempt()).collect();
        let due = async || store.due_entries(None, now, 10, Vec::new()).await.unwrap().len();
        if store.is_shared() {
            // Claimed for this process as they were written: no read of the queue takes
            // them until they are let go.
            assert_eq!(due().await, 1, "born entries are held; the one before is not");
            store.release_claims(ids).await.unwrap();
            assert_eq!(due().await, 3, "let go, they are the queue's again");
        } else {
            assert_eq!(due().await, 4, "one process's scans read past what it holds");
        }
    })
    .await;
}
