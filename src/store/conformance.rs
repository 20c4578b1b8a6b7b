//! The store's behaviour checked once against both backends: each test here runs on a
//! redb file and on a new database of the throwaway Postgres cluster (skipped, loudly,
//! where PostgreSQL is not installed; failed under `CI=true`).

use super::{QueueWrites, RedbStore, Store};
use crate::ids::{AppId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::model::events::test_event as event;
use crate::store::model::{
    AppRecord, AttemptStatus, Cursor, EndpointFilter, EndpointRecord, EventFilter, EventMeta, ListError, Owner, Page,
    PageRequest,
};

/// A store of each backend (with its queue writes, as the engine holds them), named, with
/// the directory its files live in.
pub(super) fn backends() -> Vec<(&'static str, QueueWrites, tempfile::TempDir)> {
    let redb_dir = tempfile::tempdir().unwrap();
    let redb = Store::Redb(RedbStore::open(redb_dir.path()).unwrap());
    let mut stores = vec![("redb", redb.into_shared().1, redb_dir)];
    let pg_dir = tempfile::tempdir().unwrap();
    if let Some(options) = super::postgres::tests::fresh_database(pg_dir.path()) {
        let store = Store::Postgres(Box::new(super::postgres::PgStore::connect(&options).unwrap()));
        stores.push(("postgres", store.into_shared().1, pg_dir));
    }
    stores
}

/// Every page of a filtered list, walked forward with `starting_after` and back with
/// `ending_before`, must equal the brute-force answer: the application's events that
/// match, newest first.
fn assert_pages_match(store: &Store, owner: Owner, filter: &EventFilter, all: &[EventMeta], limit: usize) {
    assert_pages_match_with(store, owner, filter, all, limit, |m| filter.keeps(m));
}

/// Like [`assert_pages_match`], with what a brute-force scan keeps given.
pub(in crate::store) fn assert_pages_match_with(
    store: &Store,
    owner: Owner,
    filter: &EventFilter,
    all: &[EventMeta],
    limit: usize,
    expect: impl Fn(&EventMeta) -> bool,
) {
    let mut expected: Vec<EventId> = all.iter().filter(|m| expect(m)).map(|m| m.id).collect();
    expected.sort_by(|a, b| b.cmp(a));
    let page = |cursor: Cursor<EventId>| {
        let request = PageRequest { limit, cursor };
        let page = store.list_events(owner, request, filter).unwrap();
        (page.items.iter().map(|e| e.meta.id).collect::<Vec<_>>(), page.has_more)
    };
    let mut forward: Vec<EventId> = Vec::new();
    let mut cursor = Cursor::Start;
    loop {
        let (ids, more) = page(cursor);
        forward.extend(&ids);
        if !more {
            break;
        }
        cursor = Cursor::After(*ids.last().unwrap());
    }
    assert_eq!(forward, expected, "forward pages of {filter:?} (limit {limit})");
    // Backwards from the oldest event of the application.
    let Some(oldest) = all.iter().map(|m| m.id).min() else { return };
    let mut backward: Vec<EventId> = Vec::new();
    let mut cursor = Cursor::Before(oldest);
    loop {
        let (ids, more) = page(cursor);
        backward.splice(0..0, ids.iter().copied());
        if !more {
            break;
        }
        cursor = Cursor::Before(*ids.first().unwrap());
    }
    let without_oldest: Vec<EventId> = expected.iter().copied().filter(|id| *id != oldest).collect();
    assert_eq!(backward, without_oldest, "backward pages of {filter:?} (limit {limit})");
}

#[test]
fn filtered_lists_equal_a_brute_force_scan_in_both_directions() {
    for (backend, store, _dir) in backends() {
        eprintln!("on {backend}");
        filtered_lists_equal_a_brute_force_scan(backend, &store);
    }
}

fn filtered_lists_equal_a_brute_force_scan(backend: &str, store: &QueueWrites) {
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
        if n % 7 == 0 && backend == "redb" {
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
        for limit in [1, 3, 10, 100] {
            assert_pages_match(store, owner, filter, &mine, limit);
        }
    }
}

#[test]
fn delivery_success_lists_equal_an_exact_check_in_both_directions() {
    for (backend, store, _dir) in backends() {
        eprintln!("on {backend}");
        delivery_success_lists_equal_an_exact_check(&store);
    }
}

fn delivery_success_lists_equal_an_exact_check(store: &QueueWrites) {
    use crate::store::model::AttemptResult;
    use crate::store::model::EndpointRecord;
    use crate::store::model::NewEvent;
    use crate::store::model::Resent;
    let owner = store.test_owner(Mode::Test);
    let a = EndpointRecord::for_test(owner, "http://127.0.0.1:9/a", "*");
    let b = EndpointRecord::for_test(owner, "http://127.0.0.1:9/b", "a.one");
    store.insert_endpoint(&a).unwrap();
    store.insert_endpoint(&b).unwrap();
    let now = crate::clock::unix_now_ms();
    let policy = super::postgres::tests::TwoRetries;
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
            match rng.u8(0..4) {
                0 => {}
                1 | 2 => {
                    results.push(AttemptResult::for_test(*key, job.attempt.endpoint_id, round == 2 || rng.bool(), now))
                }
                _ => results.push(AttemptResult::for_test(*key, job.attempt.endpoint_id, false, now)),
            }
        }
        queued = store.publish_and_record(&[], &results, now, &policy).unwrap().recorded.scheduled;
        if round == 1 {
            for event in events.iter().filter(|_| rng.u8(0..5) == 0) {
                if let Resent::Scheduled(more) = store.resend_event(owner, event.meta.id, None, now, 72).unwrap() {
                    for key in more.keys() {
                        queued.push(*key);
                    }
                }
            }
        }
    }
    // A deleted endpoint's pending deliveries end as failed.
    assert!(store.delete_endpoint(owner, b.id, (now / 1000) as i64).unwrap());

    // Exactly: the latest attempt to every endpoint the event went to succeeded (ids grow
    // with time, so the greatest per endpoint is its latest).
    let exact = |meta: &EventMeta| -> Option<bool> {
        let (attempts, _) = store.event_attempts(owner, meta.id, 10_000).unwrap();
        let mut latest: std::collections::HashMap<_, (crate::ids::DeliveryId, AttemptStatus)> = Default::default();
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
            for limit in [1, 7, 200] {
                assert_pages_match_with(store, owner, &filter, &all, limit, |m| {
                    filter.keeps(m) && exact(m) == Some(wanted)
                });
            }
        }
    }
}

/// An endpoint of `owner` at `https://example.com/<n>`.
fn record(owner: Owner, n: usize) -> EndpointRecord {
    EndpointRecord::for_test(owner, &format!("https://example.com/{n}"), "*")
}

/// The last part of each endpoint's URL, in page order.
fn urls(page: &Page<EndpointRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.url.rsplit('/').next().unwrap().to_string()).collect()
}

/// A new application of `mode`, besides the default one.
fn another_app(store: &QueueWrites, mode: Mode) -> Owner {
    let record = AppRecord {
        id: AppId::new(),
        mode,
        name: "Other".into(),
        uid: None,
        metadata: Default::default(),
        default: false,
        created: 0,
        branding: Default::default(),
    };
    store.create_app(&record).unwrap().unwrap();
    Owner { app: record.id, mode }
}

#[test]
fn endpoint_pages_walk_newest_first_in_both_directions_within_one_application() {
    for (backend, store, _dir) in backends() {
        eprintln!("on {backend}");
        endpoint_pages_walk_newest_first(&store);
    }
}

fn endpoint_pages_walk_newest_first(store: &QueueWrites) {
    let (test, live) = (store.test_owner(Mode::Test), store.test_owner(Mode::Live));
    let made: Vec<EndpointRecord> = (0..5).map(|n| record(test, n)).collect();
    for r in &made {
        store.insert_endpoint(r).unwrap();
    }
    store.insert_endpoint(&record(live, 99)).unwrap();

    let first = store
        .list_endpoints(test, PageRequest { limit: 2, cursor: Cursor::Start }, &EndpointFilter::default())
        .unwrap();
    assert_eq!(urls(&first), ["4", "3"]);
    assert!(first.has_more);
    let next = PageRequest { limit: 2, cursor: Cursor::After(made[3].id) };
    let second = store.list_endpoints(test, next, &EndpointFilter::default()).unwrap();
    assert_eq!(urls(&second), ["2", "1"]);
    let last = store
        .list_endpoints(test, PageRequest { limit: 2, cursor: Cursor::After(made[1].id) }, &EndpointFilter::default())
        .unwrap();
    assert_eq!(urls(&last), ["0"]);
    assert!(!last.has_more);
    let back = store
        .list_endpoints(test, PageRequest { limit: 2, cursor: Cursor::Before(made[1].id) }, &EndpointFilter::default())
        .unwrap();
    assert_eq!(urls(&back), ["3", "2"]);
    assert!(back.has_more);

    let live_page = store
        .list_endpoints(live, PageRequest { limit: 10, cursor: Cursor::Start }, &EndpointFilter::default())
        .unwrap();
    assert_eq!(urls(&live_page), ["99"]);
    let foreign = PageRequest { limit: 10, cursor: Cursor::After(made[0].id) };
    assert!(matches!(store.list_endpoints(live, foreign, &EndpointFilter::default()), Err(ListError::UnknownCursor)));
}

#[test]
fn a_label_list_equals_a_filtered_scan_in_both_directions_through_changes() {
    for (backend, store, _dir) in backends() {
        eprintln!("on {backend}");
        a_label_list_equals_a_filtered_scan(&store);
    }
}

fn a_label_list_equals_a_filtered_scan(store: &QueueWrites) {
    let owner = store.test_owner(Mode::Test);
    let other = another_app(store, Mode::Test);
    let mut rng = fastrand::Rng::with_seed(3);
    let labels = ["billing", "team:a", "team:b", "eu"];
    let mut ids = Vec::new();
    for n in 0..60 {
        let mut endpoint = record(if n % 10 == 0 { other } else { owner }, n);
        endpoint.labels = labels.iter().filter(|_| rng.u8(0..3) == 0).map(|l| l.to_string()).collect();
        store.insert_endpoint(&endpoint).unwrap();
        ids.push((endpoint.app, endpoint.id));
    }
    // Relabel some, delete some.
    let relabelled: Vec<_> = ids.iter().filter(|_| rng.u8(0..3) == 0).collect();
    for (app, id) in relabelled {
        let new: Vec<String> = labels.iter().filter(|_| rng.bool()).map(|l| l.to_string()).collect();
        store.update_endpoint(Owner { app: *app, mode: Mode::Test }, *id, |r| r.labels = new).unwrap();
    }
    for (app, id) in ids.iter().filter(|_| rng.u8(0..6) == 0) {
        store.delete_endpoint(Owner { app: *app, mode: Mode::Test }, *id, 0).unwrap();
    }
    let all =
        store.list_endpoints(owner, PageRequest { limit: 1000, cursor: Cursor::Start }, &EndpointFilter::default());
    let all = all.unwrap().items;
    let oldest = all.last().unwrap().id;
    for label in labels.iter().chain(&["none"]) {
        let filter = EndpointFilter { label: Some(label.to_string()) };
        let expected: Vec<EndpointId> =
            all.iter().filter(|r| r.labels.iter().any(|l| l == label)).map(|r| r.id).collect();
        for limit in [1, 3, 100] {
            let (mut forward, mut cursor) = (Vec::new(), Cursor::Start);
            loop {
                let page = store.list_endpoints(owner, PageRequest { limit, cursor }, &filter).unwrap();
                forward.extend(page.items.iter().map(|r| r.id));
                if !page.has_more {
                    break;
                }
                cursor = Cursor::After(page.items.last().unwrap().id);
            }
            assert_eq!(forward, expected, "{label} forward, limit {limit}");
            let (mut backward, mut cursor): (Vec<EndpointId>, _) = (Vec::new(), Cursor::Before(oldest));
            loop {
                let page = store.list_endpoints(owner, PageRequest { limit, cursor }, &filter).unwrap();
                backward.splice(0..0, page.items.iter().map(|r| r.id));
                if !page.has_more {
                    break;
                }
                cursor = Cursor::Before(page.items.first().unwrap().id);
            }
            let without_oldest: Vec<EndpointId> = expected.iter().copied().filter(|id| *id != oldest).collect();
            assert_eq!(backward, without_oldest, "{label} backward, limit {limit}");
        }
    }
}
