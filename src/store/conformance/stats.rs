//! Statistics: the counts `/metrics` reports and an application's delivery statistics.

use std::sync::Arc;

use crate::mode::Mode;
use crate::store::model::upkeep::Outcomes;
use crate::store::model::{EndpointRecord, EndpointStatus};

use super::{TWO_RETRIES, TestPolicy, another_app, each_backend, hook, invoices, result};

#[tokio::test]
async fn metrics_count_the_queue_and_endpoints_by_health_across_applications() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        hook(&store, owner, "*").await; // failing below
        hook(&store, store.test_owner(Mode::Live).await, "*").await; // healthy
        let mut paused = EndpointRecord::for_test(another_app(&store, Mode::Test).await, "https://example.com/p", "*");
        paused.status = EndpointStatus::Disabled;
        store.insert_endpoint(paused).await.unwrap();
        let now = 1_700_000_000_000;
        let (_, queued) = store.publish_events(invoices(owner, 3, now), now).await.unwrap();
        let failure = result(&store, queued.keys()[0], false, now).await;
        store.publish_and_record(Arc::from(&[][..]), Arc::from(&[failure][..]), now, TWO_RETRIES).await.unwrap();
        let metrics = store.metrics_snapshot(now + 5_000).await.unwrap();
        let counts = (metrics.healthy_endpoints, metrics.degraded_endpoints, metrics.disabled_endpoints);
        assert_eq!(counts, (1, 1, 1));
        assert_eq!((metrics.queue_depth, metrics.oldest_due_ms, metrics.claim_lag_ms), (3, 5_000, 5_000));
        assert!(metrics.store_bytes > 0);
        // Backends differ here by design: Postgres's claim lag counts only entries no
        // process has claimed; with redb nothing is claimed.
        assert_eq!(store.due_entries(None, now, 10, Vec::new()).await.unwrap().len(), 2);
        let lag = store.metrics_snapshot(now + 5_000).await.unwrap().claim_lag_ms;
        assert_eq!(lag, if store.is_redb() { 5_000 } else { 4_000 }, "the retry is due a second later");
    })
    .await;
}

#[tokio::test]
async fn delivery_statistics_sum_outcomes_per_bucket_and_endpoint_and_count_what_is_pending() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let [a, b] = [hook(&store, owner, "*").await, hook(&store, owner, "*").await];
        let elsewhere = hook(&store, another_app(&store, Mode::Test).await, "*").await;
        let minute = 60_000;
        let start = 1_700_000_040_000; // a whole minute, in the middle of a 5-minute bucket
        let (_, queued) = store.publish_events(invoices(owner, 3, start), start).await.unwrap();
        let _ = store.publish_events(invoices(elsewhere.owner(), 1, start), start).await.unwrap();
        // Results over three minutes: per endpoint, a success at 0, a failure at 1, the
        // third left pending.
        let policy = TestPolicy { retries: 0, ..TWO_RETRIES };
        for (n, key) in queued.keys().iter().enumerate().filter(|(n, _)| n % 3 != 2) {
            let at = start + minute * (n as u64 % 3) * 3;
            store
                .publish_and_record(
                    Arc::from(&[][..]),
                    Arc::from([result(&store, *key, n % 3 == 0, at).await]),
                    at,
                    policy,
                )
                .await
                .unwrap();
        }
        let seconds = |ms: u64| (ms / 1000) as i64;
        let stats = store.delivery_stats(owner, seconds(start), seconds(start + 10 * minute), 300, 10).await.unwrap();
        let one = |succeeded, failed| Outcomes { succeeded, failed, filtered: 0 };
        assert_eq!(stats.endpoints[&a.id], one(1, 1));
        assert_eq!(stats.endpoints[&b.id], one(1, 1));
        assert!(!stats.endpoints.contains_key(&elsewhere.id), "another application's");
        let buckets: Vec<(i64, Outcomes)> = stats.buckets.into_iter().collect();
        assert_eq!(buckets, [(seconds(start) / 300 * 300, one(2, 0)), (seconds(start) / 300 * 300 + 300, one(0, 2))]);
        assert_eq!((stats.pending[&a.id], stats.pending[&b.id], stats.pending.len()), (1, 1, 2));
        assert_eq!(stats.recent_failures.len(), 2);
        assert!(stats.recent_failures[0].id > stats.recent_failures[1].id, "newest first");
        let narrow = store.delivery_stats(owner, seconds(start), seconds(start), 60, 1).await.unwrap();
        assert_eq!((narrow.buckets.len(), narrow.recent_failures.len()), (1, 1));
    })
    .await;
}
