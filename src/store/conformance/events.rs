//! Events: filtered lists, both ways, against a brute-force scan.

use std::collections::HashMap;

use super::{TWO_RETRIES, assert_walks, each_backend};
use crate::ids::{AppId, EventId};
use crate::mode::Mode;
use crate::store::Store;
use crate::store::model::events::test_event as event;
use crate::store::model::{
    AttemptResult, AttemptStatus, EndpointRecord, EventFilter, EventMeta, NewEvent, Owner, PageRequest, Resent,
};

/// Every page of `owner`'s events that `filter` lets through, both ways, against the ids
/// of `all` (the application's events) that `expect` keeps, newest first.
fn assert_event_pages(
    store: &Store,
    owner: Owner,
    filter: &EventFilter,
    all: &[EventMeta],
    expect: impl Fn(&EventMeta) -> bool,
) {
    let mut expected: Vec<EventId> = all.iter().filter(|m| expect(m)).map(|m| m.id).collect();
    expected.sort_by(|a, b| b.cmp(a));
    let Some(oldest) = all.iter().map(|m| m.id).min() else { return };
    let page = |request: PageRequest<EventId>| store.list_events(owner, request, filter).unwrap();
    assert_walks(&format!("{filter:?}"), &expected, oldest, page, |e| e.meta.id);
}

#[test]
fn filtered_lists_equal_a_brute_force_scan_in_both_directions() {
    each_backend(|store| {
        let owner = store.test_owner(Mode::Test);
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
        let _ = store.publish_events(&events, start_ms).unwrap();
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
            assert_event_pages(&store, owner, filter, &mine, |m| filter.keeps(m));
        }
    });
}

#[test]
fn delivery_success_lists_equal_an_exact_check_in_both_directions() {
    each_backend(|store| {
        let owner = store.test_owner(Mode::Test);
        let a = EndpointRecord::for_test(owner, "http://127.0.0.1:9/a", "*");
        let b = EndpointRecord::for_test(owner, "http://127.0.0.1:9/b", "a.one");
        store.insert_endpoint(&a).unwrap();
        store.insert_endpoint(&b).unwrap();
        let now = crate::clock::unix_now_ms();
        let mut rng = fastrand::Rng::with_seed(5);
        let events: Vec<NewEvent> = (0..150)
            .map(|n| {
                let event_type = if n % 3 == 0 { "a.one" } else { "a.two" };
                event(owner, event_type, serde_json::json!({ "n": n }), now + n * 10)
            })
            .collect();
        let (_, mut queued) = store.publish_events(&events, now).unwrap();
        // Three rounds of results: each pending attempt succeeds, fails (a retry, then for
        // good) or is left pending; then resends of some events, some of which succeed.
        for round in 0..3 {
            let mut results = Vec::new();
            for key in queued.keys() {
                let job = store.jobs(&[key.attempt()]).unwrap().pop().flatten().unwrap();
                let endpoint = job.attempt.endpoint_id;
                match rng.u8(0..4) {
                    0 => {}
                    1 | 2 => results.push(AttemptResult::for_test(*key, endpoint, round == 2 || rng.bool(), now)),
                    _ => results.push(AttemptResult::for_test(*key, endpoint, false, now)),
                }
            }
            queued = store.publish_and_record(&[], &results, now, &TWO_RETRIES).unwrap().recorded.scheduled;
            if round == 1 {
                for event in events.iter().filter(|_| rng.u8(0..5) == 0) {
                    if let Resent::Scheduled(more) = store.resend_event(owner, event.meta.id, None, now, 72).unwrap() {
                        queued.extend(more);
                    }
                }
            }
        }
        // A deleted endpoint's pending deliveries end as failed.
        assert!(store.delete_endpoint(owner, b.id, (now / 1000) as i64).unwrap());

        // Exactly: the latest attempt to every endpoint the event went to succeeded (ids
        // grow with time, so the greatest per endpoint is its latest).
        let exact = |meta: &EventMeta| -> Option<bool> {
            let (attempts, _) = store.event_attempts(owner, meta.id, 10_000).unwrap();
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
        let outcomes: Vec<Option<bool>> = all.iter().map(exact).collect();
        assert!(outcomes.contains(&Some(true)) && outcomes.contains(&Some(false)), "both kinds occur");
        for wanted in [true, false] {
            for event_type in [None, Some("a.one")] {
                let filter = EventFilter {
                    delivery_success: Some(wanted),
                    event_type: event_type.map(str::to_string),
                    ..EventFilter::default()
                };
                assert_event_pages(&store, owner, &filter, &all, |m| filter.keeps(m) && exact(m) == Some(wanted));
            }
        }
    });
}
