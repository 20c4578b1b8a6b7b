//! Applications: the default one of each mode, uids, pages, and what one application
//! cannot reach of another's.

use crate::mode::Mode;
use crate::store::model::events::test_event;
use crate::store::model::{Cursor, ListError, PageRequest, UidTaken};

use super::{another_app, app, each_backend, hook, start};

#[tokio::test]
async fn every_store_has_one_default_application_per_mode_that_stays_the_same() {
    each_backend(async |store| {
        let defaults = store.default_apps().await.unwrap();
        assert_ne!(defaults.test, defaults.live);
        assert_eq!(store.default_apps().await.unwrap(), defaults);
        let test = store.app(Mode::Test, defaults.test).await.unwrap().unwrap();
        assert!(test.default && test.mode == Mode::Test && test.name == "Default (test)", "{test:?}");
        assert!(store.app(Mode::Live, defaults.test).await.unwrap().is_none(), "an app is found only in its mode");
        assert_eq!(store.reopen().await.default_apps().await.unwrap(), defaults, "made once");
    })
    .await;
}

#[tokio::test]
async fn applications_keep_uids_unique_per_mode_and_page_newest_first() {
    each_backend(async |store| {
        let a = app(Mode::Test, Some("acme"));
        assert_eq!(store.create_app(a.clone()).await.unwrap(), Ok(()));
        assert_eq!(store.create_app(app(Mode::Test, Some("acme"))).await.unwrap(), Err(UidTaken { by: a.id }));
        assert_eq!(store.create_app(app(Mode::Live, Some("acme"))).await.unwrap(), Ok(()), "uids are per mode");
        let c = app(Mode::Test, Some("globex"));
        store.create_app(c.clone()).await.unwrap().unwrap();
        assert_eq!(store.find_app(Mode::Test, "acme".into()).await.unwrap().unwrap().id, a.id);
        assert_eq!(store.find_app(Mode::Test, a.id.to_string()).await.unwrap().unwrap().id, a.id);
        assert!(store.find_app(Mode::Live, a.id.to_string()).await.unwrap().is_none(), "not across modes");
        let taken = store.update_app(Mode::Test, c.id, |r| r.uid = Some("acme".into())).await.unwrap();
        assert_eq!(taken, Err(UidTaken { by: a.id }));
        assert_eq!(
            store.app(Mode::Test, c.id).await.unwrap().unwrap().uid.as_deref(),
            Some("globex"),
            "nothing written"
        );
        let moved = store.update_app(Mode::Test, a.id, |r| r.uid = None).await.unwrap().unwrap().unwrap();
        assert_eq!(moved.uid, None);
        store.update_app(Mode::Test, c.id, |r| r.uid = Some("acme".into())).await.unwrap().unwrap();
        assert_eq!(
            store.find_app(Mode::Test, "acme".into()).await.unwrap().unwrap().id,
            c.id,
            "a uid given up is free"
        );
        // Newest first, in pages of one, both ways.
        let page = async |mode, limit, cursor| store.list_apps(mode, PageRequest { limit, cursor }).await;
        let first = page(Mode::Test, 1, Cursor::Start).await.unwrap();
        assert_eq!((first.items[0].id, first.has_more), (c.id, true));
        assert_eq!(page(Mode::Test, 1, Cursor::After(c.id)).await.unwrap().items[0].id, a.id);
        let back = page(Mode::Test, 5, Cursor::Before(a.id)).await.unwrap();
        assert_eq!((back.items.iter().map(|r| r.id).collect::<Vec<_>>(), back.has_more), (vec![c.id], false));
        assert!(matches!(page(Mode::Live, 1, Cursor::After(a.id)).await, Err(ListError::UnknownCursor)));
    })
    .await;
}

#[tokio::test]
async fn one_applications_endpoints_events_and_deliveries_are_out_of_anothers_reach() {
    each_backend(async |store| {
        let first = store.test_owner(Mode::Test).await;
        let second = another_app(&store, Mode::Test).await;
        let endpoint = hook(&store, first, "*").await;
        assert!(store.endpoint(second, endpoint.id).await.unwrap().is_none());
        assert!(store.list_endpoints(second, start(10), Default::default()).await.unwrap().items.is_empty());
        assert_eq!(store.list_endpoints(first, start(10), Default::default()).await.unwrap().items.len(), 1);

        // An event of the second application reaches none of the first's endpoints, even
        // one subscribed to everything; the first's own event does.
        let other = test_event(second, "a.b", serde_json::json!({}), crate::clock::unix_now_ms());
        let own = test_event(first, "a.b", serde_json::json!({}), crate::clock::unix_now_ms());
        let (published, _) = store.publish_events([other.clone(), own.clone()].to_vec(), 0).await.unwrap();
        assert_eq!(published.iter().map(|p| p.deliveries).collect::<Vec<_>>(), [0, 1]);
        assert!(store.event(first, other.meta.id).await.unwrap().is_none());
        assert!(store.event(second, own.meta.id).await.unwrap().is_none());
        assert!(store.event_attempts(second, own.meta.id, 10).await.unwrap().0.is_empty());
        assert!(store.list_attempts(second, endpoint.id, start(10), None).await.unwrap().items.is_empty());
        assert_eq!(store.list_attempts(first, endpoint.id, start(10), None).await.unwrap().items.len(), 1);
    })
    .await;
}
