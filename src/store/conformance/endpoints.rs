//! Endpoints: their pages, their labels, and which of them an event goes to.

use super::{another_app, assert_walks, each_backend};
use crate::ids::EndpointId;
use crate::mode::Mode;
use crate::store::model::{Cursor, EndpointFilter, EndpointRecord, ListError, Owner, Page, PageRequest};

/// An endpoint of `owner` at `https://example.com/<n>`.
fn record(owner: Owner, n: usize) -> EndpointRecord {
    EndpointRecord::for_test(owner, &format!("https://example.com/{n}"), "*")
}

/// The last part of each endpoint's URL, in page order.
fn urls(page: &Page<EndpointRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.url.rsplit('/').next().unwrap().to_string()).collect()
}

/// Every endpoint of `owner`, newest first.
fn all(store: &crate::store::Store, owner: Owner) -> Vec<EndpointRecord> {
    let request = PageRequest { limit: 1000, cursor: Cursor::Start };
    store.list_endpoints(owner, request, &EndpointFilter::default()).unwrap().items
}

#[test]
fn endpoint_pages_walk_newest_first_in_both_directions_within_one_application() {
    each_backend(|store| {
        let (test, live) = (store.test_owner(Mode::Test), store.test_owner(Mode::Live));
        let made: Vec<EndpointRecord> = (0..5).map(|n| record(test, n)).collect();
        for r in &made {
            store.insert_endpoint(r).unwrap();
        }
        store.insert_endpoint(&record(live, 99)).unwrap();
        let page = |owner, limit, cursor| {
            store.list_endpoints(owner, PageRequest { limit, cursor }, &EndpointFilter::default())
        };

        let first = page(test, 2, Cursor::Start).unwrap();
        assert_eq!((urls(&first), first.has_more), (vec!["4".into(), "3".into()], true));
        assert_eq!(urls(&page(test, 2, Cursor::After(made[3].id)).unwrap()), ["2", "1"]);
        let last = page(test, 2, Cursor::After(made[1].id)).unwrap();
        assert_eq!((urls(&last), last.has_more), (vec!["0".into()], false));
        let back = page(test, 2, Cursor::Before(made[1].id)).unwrap();
        assert_eq!((urls(&back), back.has_more), (vec!["3".into(), "2".into()], true));

        assert_eq!(urls(&page(live, 10, Cursor::Start).unwrap()), ["99"]);
        assert!(matches!(page(live, 10, Cursor::After(made[0].id)), Err(ListError::UnknownCursor)));
    });
}

#[test]
fn a_label_list_equals_a_filtered_scan_in_both_directions_through_changes() {
    each_backend(|store| {
        let owner = store.test_owner(Mode::Test);
        let other = another_app(&store, Mode::Test);
        let mut rng = fastrand::Rng::with_seed(3);
        let labels = ["billing", "team:a", "team:b", "eu"];
        let mut ids = Vec::new();
        for n in 0..60 {
            let mut endpoint = record(if n % 10 == 0 { other } else { owner }, n);
            endpoint.labels = labels.iter().filter(|_| rng.u8(0..3) == 0).map(|l| l.to_string()).collect();
            store.insert_endpoint(&endpoint).unwrap();
            ids.push((endpoint.owner(), endpoint.id));
        }
        // Relabel some, delete some.
        let relabelled: Vec<_> = ids.iter().filter(|_| rng.u8(0..3) == 0).collect();
        for (owner, id) in relabelled {
            let new: Vec<String> = labels.iter().filter(|_| rng.bool()).map(|l| l.to_string()).collect();
            store.update_endpoint(*owner, *id, |r| r.labels = new).unwrap();
        }
        for (owner, id) in ids.iter().filter(|_| rng.u8(0..6) == 0) {
            store.delete_endpoint(*owner, *id, 0).unwrap();
        }
        let all = all(&store, owner);
        for label in labels.iter().chain(&["none"]) {
            let filter = EndpointFilter { label: Some(label.to_string()) };
            let expected: Vec<EndpointId> =
                all.iter().filter(|r| r.labels.iter().any(|l| l == label)).map(|r| r.id).collect();
            let page = |request| store.list_endpoints(owner, request, &filter).unwrap();
            assert_walks(label, &expected, all.last().unwrap().id, page, |r| r.id);
        }
    });
}
