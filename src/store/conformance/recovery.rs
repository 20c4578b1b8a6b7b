//! Recovery: sending again the events whose delivery to an endpoint failed for good.

use std::sync::Arc;

use crate::mode::Mode;
use crate::store::model::AttemptResult;

use super::{TWO_RETRIES, each_backend, hook, invoices, result};

#[tokio::test]
async fn failed_deliveries_are_recovered_once_and_expired_ones_counted() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = hook(&store, owner, "*").await;
        let now = 1_700_000_000_000;
        let events = invoices(owner, 2, now);
        store.publish_and_record(Arc::from(&events[..]), Arc::from(&[][..]), now, TWO_RETRIES).await.unwrap();
        // Three failures each: the delivery fails for good.
        for round in 0..3u64 {
            let due = store.due_entries(None, now + 10_000 * (round + 1), 10, Vec::new()).await.unwrap();
            assert_eq!(due.len(), 2, "round {round}");
            let mut results: Vec<AttemptResult> = Vec::new();
            for e in due.iter() {
                results.push(result(&store, e.key, false, now + 10_000 * round).await);
            }
            store
                .publish_and_record(Arc::from(&[][..]), Arc::from(results), now + 10_000 * round, TWO_RETRIES)
                .await
                .unwrap();
        }
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        let recover =
            async |dry_run, now_ms| store.recover_endpoint(owner, endpoint.id, 0, dry_run, now_ms, 24).await.unwrap();
        let dry = recover(true, now + 60_000).await.unwrap();
        assert_eq!((dry.events, dry.expired, dry.scheduled.len()), (2, 0, 0));
        let late = recover(true, now + 100 * 3_600_000).await.unwrap();
        assert_eq!((late.events, late.expired), (0, 2), "past the undelivered window");
        let done = recover(false, now + 60_000).await.unwrap();
        assert_eq!((done.events, done.scheduled.len()), (2, 2));
        assert_eq!(store.event(owner, events[0].meta.id).await.unwrap().unwrap().pending_webhooks, 1);
        assert_eq!(store.queue_depth().await.unwrap(), 2);
        assert_eq!(recover(true, now + 60_000).await.unwrap().events, 0, "their latest attempts are pending now");
        let elsewhere = store.test_owner(Mode::Live).await;
        assert!(store.recover_endpoint(elsewhere, endpoint.id, 0, true, now, 24).await.unwrap().is_none());
    })
    .await;
}
