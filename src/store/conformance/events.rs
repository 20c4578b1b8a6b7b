//! Events: filtered lists, both ways, against a brute-force scan.

use std::sync::Arc;

use std::collections::HashMap;

use crate::ids::{AppId, EventId};
use crate::mode::Mode;
use crate::store::Store;
use crate::store::model::events::test_event as event;
use crate::store::model::upkeep::Outcomes;
use crate::store::model::{
    AttemptRecord, AttemptResult, AttemptStatus, EndpointRecord, EndpointStatus, EventFilter, EventMeta, NewEvent,
    Owner, PageRequest, Resent,
};

use super::{TWO_RETRIES, TestPolicy, assert_walks, each_backend, hook, invoices, result, start};

/// Every page of `owner`'s events that `filter` lets through, both ways, against the ids
/// of `all` (the application's events) that `expect` keeps, newest first.
async fn assert_event_pages(
    store: &Store,
    owner: Owner,
    filter: &EventFilter,
    all: &[EventMeta],
    expect: impl AsyncFn(&EventMeta) -> bool,
) {
    let mut expected: Vec<EventId> = Vec::new();
    for m in all {
        if expect(m).await {
            expected.push(m.id);
        }
    }
    expected.sort_by(|a, b| b.cmp(a));
    let Some(oldest) = all.iter().map(|m| m.id).min() else { return };
    let page = async |request: PageRequest<EventId>| store.list_events(owner, request, filter.clone()).await.unwrap();
    assert_walks(&format!("{filter:?}"), &expected, oldest, page, |e| e.meta.id).await;
}

#[tokio::test]
async fn filtered_lists_equal_a_brute_force_scan_in_both_directions() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let other = Owner { app: AppId::new(), mode: Mode::Test };
        let mut rng = fastrand::Rng::with_seed(7);
        let start_ms = 1_800_000_000_000u64;
        let mut events = Vec::new();
        for n in 0..400 {
            let created_ms = start_ms + rng.u64(0..120_000);
            let event_type = ["a.one", "a.two", "b.rare"][if n % 50 == 0 { 2 } else { rng.usize(0..2) }];
            let data = match rng.u8(0..3) {
                0 => serde_json::json!({"id": format!("vks_{}", rng.u8(0..5))}),
                1 => serde_json::json!({"n": n}),
                _ => serde_json::json!({}),
            };
            let app = if n % 9 == 0 { other } else { owner };
            let mut event = event(app, event_type, data.clone(), created_ms);
            if n % 7 == 0 && store.is_redb() {
                // As stored before ids carried the creation time: a moment after `created`
                // (in redb files of earlier layouts only).
                event.meta.id = EventId::at(created_ms + rng.u64(0..900));
            }
            events.push(event);
        }
        let _ = store.publish_events(events.clone(), start_ms).await.unwrap();
        // In a redb file the legacy events are marked as a backfill of an older file would
        // mark them (Postgres never had such ids: its events keep their time apart).
        if let Store::Redb(redb) = &**store.store() {
            let legacy = events.iter().enumerate().filter(|(n, _)| n % 7 == 0).map(|(_, e)| e.meta.id.unix_ms()).max();
            redb.mark_legacy_events_for_test(legacy.unwrap());
        }
        let mine: Vec<EventMeta> = events.iter().map(|e| e.meta.clone()).filter(|m| m.app == owner.app).collect();
        let seconds = |offset: u64| ((start_ms + offset) / 1000) as i64;
        let mut filters = vec![EventFilter::default()];
        for _ in 0..25 {
            let after = rng.bool().then(|| seconds(rng.u64(0..120_000)));
            let before = rng.bool().then(|| seconds(rng.u64(0..120_000)));
            filters.push(EventFilter {
                event_type: rng.bool().then(|| ["a.one", "a.two", "b.rare", "c.none"][rng.usize(0..4)].to_string()),
                created_after: after,
                created_before: before,
                data_id: (rng.u8(0..3) == 0).then(|| format!("vks_{}", rng.u8(0..6))),
                delivery_success: None,
            });
        }
        filters.push(EventFilter {
            created_after: Some(seconds(60_000)),
            created_before: Some(seconds(60_000)),
            ..Default::default()
        });
        filters.push(EventFilter { created_before: Some(0), ..Default::default() });
        filters.push(EventFilter { created_after: Some(i64::MAX / 2000), ..Default::default() });
        for filter in &filters {
            assert_event_pages(&store, owner, filter, &mine, async |m| filter.keeps(m)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn delivery_success_lists_equal_an_exact_check_in_both_directions() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let a = EndpointRecord::for_test(owner, "http://127.0.0.1:9/a", "*");
        let b = EndpointRecord::for_test(owner, "http://127.0.0.1:9/b", "a.one");
        store.insert_endpoint(a).await.unwrap();
        store.insert_endpoint(b.clone()).await.unwrap();
        let now = crate::clock::unix_now_ms();
        let mut rng = fastrand::Rng::with_seed(5);
        let events: Vec<NewEvent> = (0..150)
            .map(|n| {
                let event_type = if n % 3 == 0 { "a.one" } else { "a.two" };
                event(owner, event_type, serde_json::json!({ "n": n }), now + n * 10)
            })
            .collect();
        let (_, mut queued) = store.publish_events(events.clone(), now).await.unwrap();
        // Three rounds of results: each pending attempt succeeds, fails (a retry, then for
        // good) or is left pending; then resends of some events, some of which succeed.
        for round in 0..3 {
            let mut results = Vec::new();
            for key in queued.keys() {
                let job = store.jobs([key.attempt()].to_vec()).await.unwrap().pop().flatten().unwrap();
                let endpoint = job.attempt.endpoint_id;
                match rng.u8(0..4) {
                    0 => {}
                    1 | 2 => results.push(AttemptResult::for_test(*key, endpoint, round == 2 || rng.bool(), now)),
                    _ => results.push(AttemptResult::for_test(*key, endpoint, false, now)),
                }
            }
            queued = store
                .publish_and_record(Arc::from(&[][..]), Arc::from(&results[..]), now, TWO_RETRIES)
                .await
                .unwrap()
                .recorded
                .scheduled;
            if round == 1 {
                for event in events.iter().filter(|_| rng.u8(0..5) == 0) {
                    if let Resent::Scheduled(more) =
                        store.resend_event(owner, event.meta.id, None, now, 72).await.unwrap()
                    {
                        queued.extend(more);
                    }
                }
            }
        }
        // A deleted endpoint's pending deliveries end as failed.
        assert!(store.delete_endpoint(owner, b.id, (now / 1000) as i64).await.unwrap());

        // Exactly: the latest attempt to every endpoint the event went to succeeded (ids
        // grow with time, so the greatest per endpoint is its latest).
        let exact = async |meta: &EventMeta| -> Option<bool> {
            let (attempts, _) = store.event_attempts(owner, meta.id, 10_000).await.unwrap();
            let mut latest: HashMap<_, (crate::ids::DeliveryId, AttemptStatus)> = HashMap::new();
            for attempt in attempts {
                let entry = latest.entry(attempt.endpoint_id).or_insert((attempt.id, attempt.status));
                if attempt.id > entry.0 {
                    *entry = (attempt.id, attempt.status);
                }
            }
            (!latest.is_empty()).then(|| latest.values().all(|(_, status)| *status == AttemptStatus::Succeeded))
        };
        let all: Vec<EventMeta> = events.iter().map(|e| e.meta.clone()).collect();
        let mut outcomes: Vec<Option<bool>> = Vec::new();
        for meta in &all {
            outcomes.push(exact(meta).await);
        }
        assert!(outcomes.contains(&Some(true)) && outcomes.contains(&Some(false)), "both kinds occur");
        for wanted in [true, false] {
            for event_type in [None, Some("a.one")] {
                let filter = EventFilter {
                    delivery_success: Some(wanted),
                    event_type: event_type.map(str::to_string),
                    ..EventFilter::default()
                };
                assert_event_pages(&store, owner, &filter, &all, async |m| {
                    filter.keeps(m) && exact(m).await == Some(wanted)
                })
                .await;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn resending_queues_an_event_again_to_its_endpoints_or_to_one_unless_its_payload_expired() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let typed = hook(&store, owner, "invoice.paid").await;
        let everything = hook(&store, owner, "*").await;
        let unsubscribed = hook(&store, owner, "other.type").await;
        let mut paused = EndpointRecord::for_test(owner, "https://example.com/paused", "*");
        paused.status = EndpointStatus::Disabled;
        store.insert_endpoint(paused.clone()).await.unwrap();
        let now = 1_700_000_000_000;
        let event = &invoices(owner, 1, now)[0];
        let (_, queued) = store.publish_events(std::slice::from_ref(event).to_vec(), now).await.unwrap();
        let pending = async || store.event(owner, event.meta.id).await.unwrap().unwrap().pending_webhooks;
        assert_eq!((queued.len(), pending().await), (2, 2));
        // The first delivery fails for good (an hour's window), the other succeeds.
        let mut results: Vec<AttemptResult> = Vec::new();
        for k in queued.keys().iter() {
            results.push(result(&store, *k, false, now).await);
        }
        let policy = TestPolicy { retries: 0, disable_at: None, undelivered_hours: 1 };
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&results[..1][..]), now, policy).await.unwrap();
        let failed_to =
            store.jobs([queued.keys()[0].attempt()].to_vec()).await.unwrap()[0].as_ref().unwrap().attempt.endpoint_id;
        let succeeded = AttemptResult { succeeded: true, ..results[1].clone() };
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&[succeeded][..]), now, policy).await.unwrap();
        assert_eq!(pending().await, 0);

        let resend =
            async |endpoint, now_ms| store.resend_event(owner, event.meta.id, endpoint, now_ms, 1).await.unwrap();
        // Past the failed delivery's window: not to that endpoint.
        let later = now + 3_600_000;
        assert_eq!(resend(Some(failed_to), later).await, Resent::PayloadExpired { hours: 1 });
        let Resent::Scheduled(rest) = resend(None, later).await else { panic!("resent") };
        let other = if failed_to == typed.id { everything.id } else { typed.id };
        let job = store.jobs([rest.keys()[0].attempt()].to_vec()).await.unwrap().pop().flatten().unwrap();
        assert_eq!((rest.len(), job.attempt.endpoint_id, pending().await), (1, other, 1));
        // Within it: to every enabled endpoint it is for, or to one named.
        let Resent::Scheduled(all) = resend(None, now + 1_000).await else { panic!("resent") };
        assert_eq!((all.len(), pending().await), (2, 3));
        let Resent::Scheduled(one) = resend(Some(unsubscribed.id), now + 1_000).await else { panic!("resent") };
        let job = store.jobs([one.keys()[0].attempt()].to_vec()).await.unwrap().pop().flatten().unwrap();
        assert_eq!((job.attempt.endpoint_id, job.attempt.event_type.as_str()), (unsubscribed.id, "invoice.paid"));
        let Resent::Scheduled(parked) = resend(Some(paused.id), now + 1_000).await else { panic!("resent") };
        assert!(parked.is_empty(), "it waits, parked, for its endpoint");
        assert_eq!((pending().await, store.queue_depth().await.unwrap()), (5, 4));
        assert_eq!(resend(Some(crate::ids::EndpointId::new()), now).await, Resent::NoEndpoint);
        let elsewhere =
            store.resend_event(store.test_owner(Mode::Live).await, event.meta.id, None, now, 1).await.unwrap();
        assert_eq!(elsewhere, Resent::NoEvent);
    })
    .await;
}

#[tokio::test]
async fn a_test_ping_is_stored_made_with_its_event_and_queues_nothing() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = crate::clock::unix_now_ms();
        let ping = async |succeeded: bool| {
            let event = event(owner, "webhook.endpoint_test", serde_json::json!({}), now);
            let mut attempt = AttemptRecord::pending(&endpoint, event.meta.id, "webhook.endpoint_test", 1, 0);
            attempt.status = if succeeded { AttemptStatus::Succeeded } else { AttemptStatus::Failed };
            (attempt.response_status, attempt.response_body) = (Some(500), Some("down".into()));
            attempt.created = (now / 1000) as i64;
            store.record_test_ping(event.clone(), attempt.clone()).await.unwrap();
            (event, attempt)
        };
        let ((failed, attempt), (delivered, _)) = (ping(false).await, ping(true).await);
        let stored = store.event(owner, failed.meta.id).await.unwrap().unwrap();
        assert_eq!((stored.body, stored.pending_webhooks), (failed.body.clone(), 0));
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        assert_eq!(store.attempt(owner, endpoint.id, attempt.id).await.unwrap(), Some(attempt.clone()));
        let listed = store.list_attempts(owner, endpoint.id, start(10), Some(AttemptStatus::Failed)).await.unwrap();
        assert_eq!(listed.items, vec![attempt.clone()]);
        let stats = store.delivery_stats(owner, 0, i64::MAX / 2, 60, 10).await.unwrap();
        assert_eq!(stats.endpoints[&endpoint.id], Outcomes { succeeded: 1, failed: 1, filtered: 0 });
        assert_eq!(stats.recent_failures, vec![attempt]);
        let listed = async |delivered: bool| -> Vec<EventId> {
            let filter = EventFilter { delivery_success: Some(delivered), ..EventFilter::default() };
            store.list_events(owner, start(10), filter).await.unwrap().items.iter().map(|e| e.meta.id).collect()
        };
        assert_eq!(listed(true).await, [delivered.meta.id]);
        // The event of a failed test ping is undelivered by the exact rule (its one
        // attempt failed).
        assert_eq!(listed(false).await, vec![failed.meta.id]);
    })
    .await;
}

#[tokio::test]
async fn an_event_keeps_its_trace_and_its_attempts_carry_it() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        hook(&store, owner, "invoice.paid").await;
        let now = 1_700_000_000_000;
        let mut events = invoices(owner, 2, now);
        events[1].meta.trace = None; // as an earlier release published it
        let traced = events[0].meta.trace.clone().expect("a new event has a trace");
        store.publish_and_record(Arc::from(events.clone()), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        let read = |n: usize| store.event(owner, events[n].meta.id);
        assert_eq!(read(0).await.unwrap().unwrap().meta.trace.as_ref(), Some(&traced));
        assert_eq!(read(1).await.unwrap().unwrap().meta.trace, None);
        let listed = store.list_events(owner, start(10), EventFilter::default()).await.unwrap();
        let traces: Vec<_> = listed.items.iter().map(|e| e.meta.trace.clone()).collect();
        assert_eq!(traces, [None, Some(traced.clone())], "newest first");
        let due = store.due_entries(None, now, 10, Vec::new()).await.unwrap();
        let jobs = store.jobs(due.iter().map(|e| e.key.attempt()).collect()).await.unwrap();
        let mut carried: Vec<_> = jobs.into_iter().map(|job| job.expect("a job").trace).collect();
        carried.sort_by_key(Option::is_none);
        assert_eq!(carried, [Some(traced), None]);
    })
    .await;
}
