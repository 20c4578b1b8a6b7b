//! Endpoints: their pages, their labels, and which of them an event goes to.

use crate::event_types::{WILDCARD, kayle_name};
use crate::ids::EndpointId;
use crate::mode::Mode;
use crate::store::model::endpoints::subscribed;
use crate::store::model::events::test_event;
use crate::store::model::{
    Cursor, EndpointFilter, EndpointRecord, EndpointStatus, ListError, Owner, Page, PageRequest,
};

use super::{another_app, assert_walks, each_backend};

/// An endpoint of `owner` at `https://example.com/<n>`.
fn record(owner: Owner, n: usize) -> EndpointRecord {
    EndpointRecord::for_test(owner, &format!("https://example.com/{n}"), "*")
}

/// The last part of each endpoint's URL, in page order.
fn urls(page: &Page<EndpointRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.url.rsplit('/').next().unwrap().to_string()).collect()
}

/// Every endpoint of `owner`, newest first.
async fn all(store: &crate::store::Store, owner: Owner) -> Vec<EndpointRecord> {
    let request = PageRequest { limit: 1000, cursor: Cursor::Start };
    store.list_endpoints(owner, request, EndpointFilter::default()).await.unwrap().items
}

#[tokio::test]
async fn endpoint_pages_walk_newest_first_in_both_directions_within_one_application() {
    each_backend(async |store| {
        let (test, live) = (store.test_owner(Mode::Test).await, store.test_owner(Mode::Live).await);
        let made: Vec<EndpointRecord> = (0..5).map(|n| record(test, n)).collect();
        for r in &made {
            store.insert_endpoint(r.clone()).await.unwrap();
        }
        store.insert_endpoint(record(live, 99)).await.unwrap();
        let page = async |owner, limit, cursor| {
            store.list_endpoints(owner, PageRequest { limit, cursor }, EndpointFilter::default()).await
        };

        let first = page(test, 2, Cursor::Start).await.unwrap();
        assert_eq!((urls(&first), first.has_more), (vec!["4".into(), "3".into()], true));
        assert_eq!(urls(&page(test, 2, Cursor::After(made[3].id)).await.unwrap()), ["2", "1"]);
        let last = page(test, 2, Cursor::After(made[1].id)).await.unwrap();
        assert_eq!((urls(&last), last.has_more), (vec!["0".into()], false));
        let back = page(test, 2, Cursor::Before(made[1].id)).await.unwrap();
        assert_eq!((urls(&back), back.has_more), (vec!["3".into(), "2".into()], true));

        assert_eq!(urls(&page(live, 10, Cursor::Start).await.unwrap()), ["99"]);
        assert!(matches!(page(live, 10, Cursor::After(made[0].id)).await, Err(ListError::UnknownCursor)));
    })
    .await;
}

#[tokio::test]
async fn a_label_list_equals_a_filtered_scan_in_both_directions_through_changes() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let other = another_app(&store, Mode::Test).await;
        let mut rng = fastrand::Rng::with_seed(3);
        let labels = ["billing", "team:a", "team:b", "eu"];
        let mut ids = Vec::new();
        for n in 0..60 {
            let mut endpoint = record(if n % 10 == 0 { other } else { owner }, n);
            endpoint.labels = labels.iter().filter(|_| rng.u8(0..3) == 0).map(|l| l.to_string()).collect();
            store.insert_endpoint(endpoint.clone()).await.unwrap();
            ids.push((endpoint.owner(), endpoint.id));
        }
        // Relabel some, delete some.
        let relabelled: Vec<_> = ids.iter().filter(|_| rng.u8(0..3) == 0).collect();
        for (owner, id) in relabelled {
            let new: Vec<String> = labels.iter().filter(|_| rng.bool()).map(|l| l.to_string()).collect();
            store.update_endpoint(*owner, *id, move |r| r.labels = new).await.unwrap();
        }
        for (owner, id) in ids.iter().filter(|_| rng.u8(0..6) == 0) {
            store.delete_endpoint(*owner, *id, 0).await.unwrap();
        }
        let all = all(&store, owner).await;
        for label in labels.iter().chain(&["none"]) {
            let filter = EndpointFilter { label: Some(label.to_string()) };
            let expected: Vec<EndpointId> =
                all.iter().filter(|r| r.labels.iter().any(|l| l == label)).map(|r| r.id).collect();
            let page = async |request| store.list_endpoints(owner, request, filter.clone()).await.unwrap();
            assert_walks(label, &expected, all.last().unwrap().id, page, |r| r.id).await;
        }
    })
    .await;
}

#[tokio::test]
async fn publishing_reaches_exactly_the_enabled_endpoints_that_subscribe_under_the_name_they_chose() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let other = another_app(&store, Mode::Test).await;
        let mut rng = fastrand::Rng::with_seed(11);
        // Types, the wildcard, and the Kayle name of a built-in type.
        let kayle = kayle_name("verification_session.verified").expect("a built-in type has a Kayle name");
        let names = ["a.b", "a.c", "verification_session.verified", kayle, WILDCARD];
        let pick = |rng: &mut fastrand::Rng| -> Vec<String> {
            let mut chosen: Vec<String> = names.iter().filter(|_| rng.u8(0..4) == 0).map(|n| n.to_string()).collect();
            if chosen.is_empty() {
                chosen.push(names[rng.usize(0..names.len())].to_string());
            }
            chosen
        };
        let mut ids = Vec::new();
        for n in 0..80 {
            let mut endpoint = record(if n % 8 == 0 { other } else { owner }, n);
            endpoint.enabled_events = pick(&mut rng);
            if rng.u8(0..5) == 0 {
                endpoint.status = EndpointStatus::Disabled;
            }
            store.insert_endpoint(endpoint.clone()).await.unwrap();
            ids.push((endpoint.owner(), endpoint.id));
        }
        // Change what some subscribe to, disable or enable some, delete some.
        let changed: Vec<_> = ids.iter().filter(|_| rng.u8(0..3) == 0).collect();
        for (owner, id) in changed {
            let (events, flip) = (pick(&mut rng), rng.bool());
            store
                .update_endpoint(*owner, *id, move |r| {
                    r.enabled_events = events;
                    if flip {
                        r.status = match r.status {
                            EndpointStatus::Enabled => EndpointStatus::Disabled,
                            _ => EndpointStatus::Enabled,
                        };
                    }
                })
                .await
                .unwrap();
        }
        for (owner, id) in ids.iter().filter(|_| rng.u8(0..6) == 0) {
            store.delete_endpoint(*owner, *id, 0).await.unwrap();
        }
        for app in [owner, other] {
            let endpoints = all(&store, app).await;
            for event_type in ["a.b", "a.c", "verification_session.verified", "z.unknown"] {
                let mut scanned: Vec<(EndpointId, String)> = endpoints
                    .iter()
                    .filter(|e| e.status == EndpointStatus::Enabled)
                    .filter_map(|e| subscribed(e, event_type).map(|name| (e.id, name.to_string())))
                    .collect();
                let event = test_event(app, event_type, serde_json::json!({}), crate::clock::unix_now_ms());
                let (published, _) = store.publish_events(std::slice::from_ref(&event).to_vec(), 0).await.unwrap();
                let (attempts, _) = store.event_attempts(app, event.meta.id, 1000).await.unwrap();
                let mut reached: Vec<(EndpointId, String)> =
                    attempts.into_iter().map(|a| (a.endpoint_id, a.event_type)).collect();
                scanned.sort();
                reached.sort();
                assert_eq!(reached, scanned, "{event_type}");
                assert_eq!(published[0].deliveries as usize, scanned.len(), "{event_type}");
            }
        }
    })
    .await;
}
