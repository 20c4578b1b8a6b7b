//! Attempts: recording their results (a success, a retry, a failure for good, a
//! disabled endpoint), and their lists.

use std::sync::Arc;

use crate::ids::DeliveryId;
use crate::mode::Mode;
use crate::store::model::events::test_event;
use crate::store::model::upkeep::Outcomes;
use crate::store::model::{
    AttemptResult, AttemptStatus, Cursor, EndpointRecord, EndpointStatus, EventFilter, Scheduled, SentRequest,
};

use super::{TWO_RETRIES, TestPolicy, assert_walks, each_backend, hook, invoices, result, start, walk};

#[tokio::test]
async fn results_end_deliveries_or_schedule_retries_and_a_repeated_result_changes_nothing() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let events = invoices(owner, 3, now);
        let unmatched = test_event(owner, "other.type", serde_json::json!({}), now + 5);
        let written = store
            .publish_and_record(
                Arc::from(&[events.clone(), vec![unmatched]].concat()[..]),
                Arc::from(&[][..]),
                now,
                TWO_RETRIES,
            )
            .await
            .unwrap();
        assert_eq!(written.published.iter().map(|p| p.deliveries).collect::<Vec<_>>(), vec![1, 1, 1, 0]);
        assert_eq!(written.first_attempts.len(), 3);
        assert_eq!(store.queue_depth().await.unwrap(), 3);

        let due = store.due_entries(None, now, 10, Vec::new()).await.unwrap();
        assert_eq!(due.len(), 3);
        assert!(due.iter().all(|e| e.endpoint == endpoint.id && e.app == owner.app));
        let jobs = store.jobs(due.iter().map(|e| e.key.attempt()).collect::<Vec<_>>()).await.unwrap();
        let job = jobs[0].as_ref().expect("a job");
        assert_eq!(job.endpoint.as_ref().map(|e| e.id), Some(endpoint.id));
        assert_eq!(job.body.as_deref(), Some(events[0].body.as_slice()), "the payload byte for byte");

        // The first succeeds, the second and third fail: a retry follows each.
        let result = |n: usize, ok: bool| AttemptResult::for_test(due[n].key, endpoint.id, ok, now + 10);
        let results = [result(0, true), result(1, false), result(2, false)];
        let written =
            store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now + 10, TWO_RETRIES).await.unwrap();
        assert_eq!((written.recorded.finished, written.recorded.scheduled.len()), (1, 2));
        assert_eq!(store.queue_depth().await.unwrap(), 2);
        let first = store.event(owner, events[0].meta.id).await.unwrap().unwrap();
        assert_eq!((first.pending_webhooks, &first.body), (0, &events[0].body));
        assert_eq!(store.event(owner, events[1].meta.id).await.unwrap().unwrap().pending_webhooks, 1);
        let failing = store.endpoint(owner, endpoint.id).await.unwrap().unwrap().failing;
        assert_eq!(failing.map(|f| f.attempts), Some(2), "two failures in a row");
        let mut retries: Vec<_> =
            store.due_entries(None, now + 2_000, 10, Vec::new()).await.unwrap().iter().map(|e| e.key).collect();
        let mut scheduled = written.recorded.scheduled.keys().to_vec();
        retries.sort();
        scheduled.sort();
        assert_eq!(retries, scheduled);
        assert!(retries.iter().all(|key| key.due_ms() == now + 1_010), "a second after the result");
        let again = store
            .publish_and_record(Arc::from(&[][..]), Arc::from(&[result(0, true)][..]), now + 20, TWO_RETRIES)
            .await
            .unwrap();
        assert_eq!(again.recorded.finished, 0, "a result for an attempt no longer pending only drops its entry");

        assert_eq!(
            store.list_attempts(owner, endpoint.id, start(10), None).await.unwrap().items.len(),
            5,
            "3 made, 2 pending"
        );
        let retrying = store.list_attempts(owner, endpoint.id, start(10), Some(AttemptStatus::Retrying)).await.unwrap();
        assert_eq!(retrying.items.iter().map(|a| a.next_retry_at).collect::<Vec<_>>(), [Some(1_700_000_001); 2]);
        let listed = async |filter: EventFilter| -> Vec<_> {
            store.list_events(owner, start(10), filter).await.unwrap().items.iter().map(|e| e.meta.id).collect()
        };
        let delivered = |ok| EventFilter { delivery_success: Some(ok), ..EventFilter::default() };
        assert_eq!(listed(delivered(true)).await, vec![events[0].meta.id]);
        assert_eq!(listed(delivered(false)).await.len(), 2);
        assert_eq!(
            listed(EventFilter { event_type: Some("other.type".into()), ..EventFilter::default() }).await.len(),
            1
        );
        let (attempts, more) = store.event_attempts(owner, events[1].meta.id, 10).await.unwrap();
        assert_eq!((attempts.len(), more), (2, false));

        // Deleting the endpoint ends its pending deliveries.
        assert!(store.delete_endpoint(owner, endpoint.id, 5).await.unwrap());
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        assert_eq!(store.event(owner, events[1].meta.id).await.unwrap().unwrap().pending_webhooks, 0);
        assert_eq!(listed(delivered(false)).await.len(), 2, "failed for good now");
        let (attempts, _) = store.event_attempts(owner, events[1].meta.id, 10).await.unwrap();
        let ended: Vec<_> = attempts.iter().filter(|a| a.status == AttemptStatus::Failed).collect();
        assert_eq!(ended.iter().map(|a| a.error.as_deref()).collect::<Vec<_>>(), [Some("endpoint deleted")]);
        assert!(attempts.iter().all(|a| a.status != AttemptStatus::Pending));
        // Ended, never made: not counted among the outcomes.
        let stats = store.delivery_stats(owner, 0, i64::MAX / 2, 60, 10).await.unwrap();
        assert_eq!(stats.endpoints[&endpoint.id], Outcomes { succeeded: 1, failed: 2, filtered: 0 });
        // The two deliveries the deletion ended are failed: among the recent failures
        // and under the endpoint's `failed` attempts, as the unfiltered list shows them.
        assert_eq!(stats.recent_failures.len(), 4, "the two retrying, made, and the two ended");
        let failed = store.list_attempts(owner, endpoint.id, start(10), Some(AttemptStatus::Failed)).await.unwrap();
        assert_eq!(failed.items.len(), 2);
        let all = store.list_attempts(owner, endpoint.id, start(10), None).await.unwrap().items;
        assert_eq!(all.iter().filter(|a| a.status == AttemptStatus::Failed).count(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_delivery_fails_for_good_after_its_retries_and_a_success_ends_a_run_of_failures() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let policy = TestPolicy { retries: 1, ..TWO_RETRIES };
        let now = 1_700_000_000_000;
        let event = &invoices(owner, 1, now)[0];
        let (_, mut queued) = store.publish_events(std::slice::from_ref(event).to_vec(), now).await.unwrap();
        // Two failures: a retry, then the end of the delivery.
        for (n, status) in [(1, AttemptStatus::Retrying), (2, AttemptStatus::Failed)] {
            let key = queued.keys()[0];
            let written = store
                .publish_and_record(Arc::from(&[][..]), Arc::from([result(&store, key, false, now).await]), now, policy)
                .await
                .unwrap();
            let made = store.attempt(owner, endpoint.id, key.attempt()).await.unwrap().unwrap();
            assert_eq!((made.attempt, made.status, made.response_status), (n, status, Some(500)));
            queued = written.recorded.scheduled;
        }
        assert!(queued.is_empty() && store.queue_depth().await.unwrap() == 0);
        assert_eq!(store.event(owner, event.meta.id).await.unwrap().unwrap().pending_webhooks, 0);
        let endpoint_now = async || store.endpoint(owner, endpoint.id).await.unwrap().unwrap();
        assert_eq!(
            (endpoint_now().await.status, endpoint_now().await.failing.map(|f| f.attempts)),
            (EndpointStatus::Enabled, Some(2))
        );
        let (_, queued) = store.publish_events(invoices(owner, 1, now + 10), now).await.unwrap();
        store
            .publish_and_record(
                Arc::from(&[][..]),
                Arc::from([result(&store, queued.keys()[0], true, now).await]),
                now,
                policy,
            )
            .await
            .unwrap();
        assert_eq!(endpoint_now().await.failing, None, "a success ends the run");
    })
    .await;
}

#[tokio::test]
async fn deliveries_filtered_by_status_equal_a_filtered_scan_in_both_directions() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/a", "*");
        store.insert_endpoint(endpoint.clone()).await.unwrap();
        hook(&store, owner, "*").await;
        let now = crate::clock::unix_now_ms();
        let policy = TestPolicy { retries: 1, ..TWO_RETRIES };
        let mut rng = fastrand::Rng::with_seed(11);
        // First attempts: most succeed, some fail (a retry follows), a quarter stay
        // pending; then the retries: some succeed, some fail for good, and a quarter wait
        // (their first attempts stay `retrying`: the others' become `failed`).
        let mut record = async |queued: Scheduled, at: u64| {
            let keys: Vec<_> = queued.keys().iter().filter(|_| rng.u8(0..4) != 0).collect();
            let mut results: Vec<AttemptResult> = Vec::new();
            for key in keys {
                results.push(result(&store, *key, rng.u8(0..3) != 0, at).await);
            }
            store
                .publish_and_record(Arc::from(&[][..]), Arc::from(results), at, policy)
                .await
                .unwrap()
                .recorded
                .scheduled
        };
        let retries = record(store.publish_events(invoices(owner, 80, now), now).await.unwrap().1, now + 10).await;
        let _ = record(retries, now + 20).await;
        let list = async |status, request| store.list_attempts(owner, endpoint.id, request, status).await.unwrap();
        let all: Vec<DeliveryId> = walk(100, Cursor::Start, &async |r| list(None, r).await, |a| a.id).await;
        let oldest = *all.last().unwrap();
        assert_walks("all", &all, oldest, async |r| list(None, r).await, |a| a.id).await;
        for status in [AttemptStatus::Pending, AttemptStatus::Succeeded, AttemptStatus::Retrying, AttemptStatus::Failed]
        {
            let mut expected: Vec<DeliveryId> = Vec::new();
            for id in &all {
                if store.attempt(owner, endpoint.id, *id).await.unwrap().unwrap().status == status {
                    expected.push(*id);
                }
            }
            assert!(!expected.is_empty(), "every status occurs, or the test proves little: {status:?}");
            assert_walks(&format!("{status:?}"), &expected, oldest, async |r| list(Some(status), r).await, |a| a.id)
                .await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_attempt_is_retrying_until_its_retry_is_made_then_failed() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let events = invoices(owner, 1, now);
        store.publish_and_record(Arc::from(events.clone()), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        // Makes the attempt due by `at`, with `ok` as its outcome; the statuses of the
        // delivery's attempts after it, oldest first.
        let make = async |at: u64, ok: bool| {
            let due = store.due_entries(None, at, 10, Vec::new()).await.unwrap();
            assert_eq!(due.len(), 1, "one attempt due at {at}");
            let made = [result(&store, due[0].key, ok, at).await];
            store.publish_and_record(Arc::from(&[][..]), Arc::from(&made[..]), at, TWO_RETRIES).await.unwrap();
            let mut attempts = store.event_attempts(owner, events[0].meta.id, 10).await.unwrap().0;
            attempts.sort_by_key(|a| a.attempt);
            attempts.iter().map(|a| a.status).collect::<Vec<_>>()
        };
        use AttemptStatus::{Failed, Pending, Retrying, Succeeded};
        assert_eq!(make(now, false).await, [Retrying, Pending]);
        let first = store.list_attempts(owner, endpoint.id, start(10), Some(Retrying)).await.unwrap().items;
        assert_eq!(first.len(), 1);
        // While its retry waits, the retrying attempt is the one "retry now" moves on from.
        assert!(matches!(
            store.retry_now(owner, endpoint.id, first[0].id, now + 5).await.unwrap(),
            crate::store::model::RetryNow::Moved(..)
        ));
        // The retry is made: nothing waits on the first attempt any more.
        assert_eq!(make(now + 5, false).await, [Failed, Retrying, Pending]);
        assert_eq!(make(now + 2_000, true).await, [Failed, Failed, Succeeded]);
        let retrying = store.list_attempts(owner, endpoint.id, start(10), Some(Retrying)).await.unwrap();
        assert!(retrying.items.is_empty(), "nothing waits for a retry");
        let failed = store.list_attempts(owner, endpoint.id, start(10), Some(Failed)).await.unwrap();
        assert_eq!(failed.items.len(), 2);
        assert!(failed.items.iter().all(|a| a.next_retry_at.is_some()), "when each retry was due stays recorded");
        assert!(matches!(
            store.retry_now(owner, endpoint.id, first[0].id, now + 3_000).await.unwrap(),
            crate::store::model::RetryNow::NotScheduled(Failed)
        ));
        // The outcomes were counted once, when each attempt was made.
        let stats = store.delivery_stats(owner, 0, i64::MAX / 2, 60, 10).await.unwrap();
        assert_eq!(stats.endpoints[&endpoint.id], Outcomes { succeeded: 1, failed: 2, filtered: 0 });
        // The delivery ended well: there is nothing to recover.
        let recovery = store.recover_endpoint(owner, endpoint.id, 0, true, now + 3_000, 1).await.unwrap().unwrap();
        assert_eq!(recovery.events, 0);
    })
    .await;
}

#[tokio::test]
async fn an_attempt_is_left_retrying_when_a_resend_makes_its_successor_ambiguous() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let events = invoices(owner, 1, now);
        let event = events[0].meta.id;
        store.publish_and_record(Arc::from(events), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        // Makes the due attempt numbered `number` (the oldest such, if two are due).
        let make = async |at: u64, number: u32| {
            let due = store.due_entries(None, at, 10, Vec::new()).await.unwrap();
            let mut made = None;
            for entry in due {
                let job = store.jobs(vec![entry.key.attempt()]).await.unwrap().pop().flatten().unwrap();
                if job.attempt.attempt == number && made.is_none() {
                    made = Some(result(&store, entry.key, false, at).await);
                }
            }
            let made = [made.expect("an attempt of that number is due")];
            store.publish_and_record(Arc::from(&[][..]), Arc::from(&made[..]), at, TWO_RETRIES).await.unwrap();
        };
        let statuses = async || {
            let mut attempts = store.event_attempts(owner, event, 10).await.unwrap().0;
            attempts.sort_by_key(|a| a.id);
            attempts.iter().map(|a| (a.attempt, a.status)).collect::<Vec<_>>()
        };
        use AttemptStatus::{Pending, Retrying};
        // A1 fails; while A2 waits, the event is resent: B1 fails too.
        make(now, 1).await;
        store.resend_event(owner, event, Some(endpoint.id), now + 1, 1).await.unwrap();
        make(now + 2, 1).await;
        assert_eq!(statuses().await, [(1, Retrying), (2, Pending), (1, Retrying), (2, Pending)]);
        // A2 is made: which attempt 1 it followed is not recorded, so neither is changed
        // (rather than B1, whose retry still waits, marked failed).
        make(now + 2_000, 2).await;
        assert_eq!(statuses().await, [(1, Retrying), (2, Retrying), (1, Retrying), (2, Pending), (3, Pending)]);
    })
    .await;
}

#[tokio::test]
async fn a_types_attempts_are_read_through_its_events_unless_it_has_too_many() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let other = super::another_app(&store, Mode::Test).await;
        let every = hook(&store, owner, "*").await;
        let paid_only = hook(&store, owner, "invoice.paid").await;
        hook(&store, other, "*").await;
        let now = 1_700_000_000_000;
        let mut events = invoices(owner, 3, now);
        events.push(test_event(owner, "order.made", serde_json::json!({}), now + 5));
        events.extend(invoices(other, 2, now + 6));
        store.publish_and_record(Arc::from(events), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        // One first attempt of an invoice fails: its retry is the type's too.
        let due = store.due_entries(None, now + 10, 10, Vec::new()).await.unwrap();
        let failing = due.iter().find(|e| e.endpoint == paid_only.id).expect("an invoice's attempt is due");
        let failed = [result(&store, failing.key, false, now + 10).await];
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&failed[..]), now + 10, TWO_RETRIES).await.unwrap();

        let of_type = async |event_type: &str, max: usize| {
            let found = store.attempts_of_type(owner, event_type.to_string(), max).await.unwrap();
            found.map(|attempts| {
                let mut seen: Vec<_> = attempts.iter().map(|a| (a.event_type.clone(), a.endpoint_id, a.app)).collect();
                seen.sort();
                (attempts.len(), seen)
            })
        };
        let (count, seen) = of_type("invoice.paid", 3).await.expect("3 events are not more than 3");
        assert_eq!(of_type("invoice.paid", usize::MAX).await.map(|(n, _)| n), Some(count), "no bound");
        assert_eq!(count, 3 * 2 + 1, "3 events to 2 endpoints, and the retry: {seen:?}");
        assert!(seen.iter().all(|(t, _, app)| t == "invoice.paid" && *app == owner.app), "{seen:?}");
        let (count, seen) = of_type("order.made", 3).await.unwrap();
        assert_eq!((count, seen[0].1), (1, every.id), "the one endpoint subscribed to it");
        assert_eq!(of_type("invoice.paid", 2).await, None, "3 events are more than 2");
        assert_eq!(of_type("nothing.of.this.type", 0).await, Some((0, vec![])));
    })
    .await;
}

/// [`TWO_RETRIES`], failing at 2 failures in a row, and telling of each change as an event
/// of `ops` named for it.
#[derive(Clone, Copy)]
struct Telling {
    ops: crate::store::model::Owner,
}

impl crate::store::model::RecordPolicy for Telling {
    fn retry_delay(&self, number: u32, retry_after: Option<std::time::Duration>) -> Option<std::time::Duration> {
        TWO_RETRIES.retry_delay(number, retry_after)
    }

    fn health(
        &self,
        run: Option<crate::store::model::FailureRun>,
        result: &AttemptResult,
    ) -> crate::store::model::HealthVerdict {
        TWO_RETRIES.health(run, result)
    }

    fn undelivered_retention(&self, hours: Option<u32>) -> std::time::Duration {
        TWO_RETRIES.undelivered_retention(hours)
    }

    fn failing_after(&self) -> Option<u32> {
        Some(2)
    }

    fn tell(
        &self,
        told: &crate::store::model::Told,
        app: &crate::store::model::AppRecord,
        now_ms: u64,
    ) -> Option<crate::store::model::NewEvent> {
        use crate::store::model::Told;
        let (kind, attempt) = match told {
            Told::Disabled { attempt, .. } => ("t.disabled", attempt),
            Told::Exhausted { attempt, .. } => ("t.exhausted", attempt),
            Told::Failing { attempt, .. } => ("t.failing", attempt),
            Told::Recovered { attempt, .. } => ("t.recovered", attempt),
        };
        let data = serde_json::json!({"app": app.id.to_string(), "attempt": attempt.attempt});
        Some(test_event(self.ops, kind, data, now_ms))
    }
}

#[tokio::test]
async fn a_run_reaching_the_threshold_a_recovery_and_a_delivery_failing_for_good_are_told_once_with_the_record() {
    use crate::store::model::Owner;
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let ops = super::another_app(&store, Mode::Test).await;
        let policy = Telling { ops };
        hook(&store, owner, "invoice.paid").await;
        hook(&store, ops, "*").await;
        // An endpoint of an application with no record (as an operational one): never told of.
        let ghost = Owner { app: crate::ids::AppId::new(), mode: Mode::Test };
        hook(&store, ghost, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let mut events = invoices(owner, 2, now);
        events.extend(invoices(ghost, 1, now + 5));
        let (a, b) = (events[0].meta.id, events[1].meta.id);
        store.publish_and_record(Arc::from(events), Arc::from(&[][..]), now, policy).await.unwrap();
        // Records every due attempt at `at`: those of the events in `outcomes` in that
        // order, as each says, then the rest.
        let record = async |outcomes: &[(crate::ids::EventId, bool)], at: u64| {
            let mut due = Vec::new();
            for entry in store.due_entries(None, at, 100, Vec::new()).await.unwrap() {
                let job = store.jobs(vec![entry.key.attempt()]).await.unwrap().pop().flatten().unwrap();
                due.push((job.attempt.event_id, job.attempt.app, entry.key));
            }
            let mut results = Vec::new();
            for (event, ok) in outcomes {
                let key = due.iter().find(|(e, _, _)| e == event).expect("the event's attempt is due").2;
                results.push(result(&store, key, *ok, at).await);
            }
            // The rest: the ghost's fail, the ops endpoint's (the told events) succeed.
            for (event, app, key) in &due {
                if !outcomes.iter().any(|(e, _)| e == event) {
                    results.push(result(&store, *key, *app != ghost.app, at).await);
                }
            }
            store.publish_and_record(Arc::from(&[][..]), Arc::from(results), at, policy).await.unwrap()
        };
        let told = async || -> Vec<(String, u64)> {
            let listed = store.list_events(ops, start(100), EventFilter::default()).await.unwrap().items;
            listed
                .iter()
                .rev()
                .map(|e| {
                    let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
                    (e.meta.event_type.clone(), body["data"]["attempt"].as_u64().unwrap())
                })
                .collect()
        };
        // A's and B's first attempts fail: the run reaches 2 once.
        let written = record(&[(a, false), (b, false)], now + 10).await;
        assert_eq!(told().await, [("t.failing".to_string(), 1)]);
        assert!(!written.recorded.scheduled.is_empty(), "the told event is queued to the ops endpoint");
        // A's retry succeeds: recovered. B's retry fails, and its last too: a new run
        // reaches 2, and B's delivery failed for good.
        record(&[(a, true), (b, false)], now + 2_000).await;
        record(&[(b, false)], now + 4_000).await;
        assert_eq!(
            told().await,
            [("t.failing", 1), ("t.recovered", 2), ("t.failing", 3), ("t.exhausted", 3)]
                .map(|(t, n)| (t.to_string(), n))
        );
    })
    .await;
}

#[tokio::test]
async fn payloads_and_excerpts_sealed_before_the_writer_read_back_as_those_sealed_in_it() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let events = invoices(owner, 2, now);
        // The first sealed on the publisher's side, as the engine does; the second in the
        // write.
        let ahead = events[0].clone().sealed_ahead(store.sealer());
        let plain = events[0].meta.envelope().stored(&events[0].body);
        let sealed = ahead.sealed.as_deref().expect("sealed ahead");
        assert!(!sealed.windows(plain.len()).any(|w| w == plain), "the stored payload is not in clear");
        let published = [ahead, events[1].clone()];
        store.publish_and_record(Arc::from(&published[..]), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        for event in &events {
            let stored = store.event(owner, event.meta.id).await.unwrap().unwrap();
            assert_eq!(stored.body, event.body, "the payload read back byte for byte");
        }

        let due = store.due_entries(None, now, 10, Vec::new()).await.unwrap();
        assert_eq!(due.len(), 2);
        let answered = |n: usize, excerpt: &str| AttemptResult {
            response_body: Some(excerpt.to_string()),
            sent: Some(SentRequest {
                version: 1,
                method: "POST".into(),
                url: "http://127.0.0.1:9/hook".into(),
                body: format!("{{\"sent\":\"{excerpt}\"}}"),
            }),
            ..AttemptResult::for_test(due[n].key, endpoint.id, true, now + 10)
        };
        let first = answered(0, "thanks, first").sealed_ahead(store.sealer());
        assert!(first.sealed && first.response_body.as_deref() != Some("thanks, first"), "{first:?}");
        let results = [first, answered(1, "thanks, second")];
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now + 10, TWO_RETRIES).await.unwrap();
        for (n, excerpt) in [(0, "thanks, first"), (1, "thanks, second")] {
            let attempt = due[n].key.attempt();
            let record = store.attempt(owner, endpoint.id, attempt).await.unwrap().expect("the attempt");
            assert_eq!(record.status, AttemptStatus::Succeeded);
            assert_eq!(record.response_body.as_deref(), Some(excerpt), "opened once, not sealed twice");
            assert_eq!(record.sent.map(|s| s.body), Some(format!("{{\"sent\":\"{excerpt}\"}}")));
        }
    })
    .await;
}
