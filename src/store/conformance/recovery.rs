//! Recovery: sending again the events whose delivery to an endpoint failed for good.

use crate::mode::Mode;
use crate::store::model::AttemptResult;

use super::{TWO_RETRIES, each_backend, hook, invoices, result};

#[test]
fn failed_deliveries_are_recovered_once_and_expired_ones_counted() {
    each_backend(|store| {
        let owner = store.test_owner(Mode::Test);
        let endpoint = hook(&store, owner, "*");
        let now = 1_700_000_000_000;
        let events = invoices(owner, 2, now);
        store.publish_and_record(&events, &[], now, &TWO_RETRIES).unwrap();
        // Three failures each: the delivery fails for good.
        for round in 0..3u64 {
            let due = store.due_entries(None, now + 10_000 * (round + 1), 10).unwrap();
            assert_eq!(due.len(), 2, "round {round}");
            let results: Vec<AttemptResult> =
                due.iter().map(|e| result(&store, e.key, false, now + 10_000 * round)).collect();
            store.publish_and_record(&[], &results, now + 10_000 * round, &TWO_RETRIES).unwrap();
        }
        assert_eq!(store.queue_depth().unwrap(), 0);
        let recover = |dry_run, now_ms| store.recover_endpoint(owner, endpoint.id, 0, dry_run, now_ms, 24).unwrap();
        let dry = recover(true, now + 60_000).unwrap();
        assert_eq!((dry.events, dry.expired, dry.scheduled.len()), (2, 0, 0));
        let late = recover(true, now + 100 * 3_600_000).unwrap();
        assert_eq!((late.events, late.expired), (0, 2), "past the undelivered window");
        let done = recover(false, now + 60_000).unwrap();
        assert_eq!((done.events, done.scheduled.len()), (2, 2));
        assert_eq!(store.event(owner, events[0].meta.id).unwrap().unwrap().pending_webhooks, 1);
        assert_eq!(store.queue_depth().unwrap(), 2);
        assert_eq!(recover(true, now + 60_000).unwrap().events, 0, "their latest attempts are pending now");
        let elsewhere = store.test_owner(Mode::Live);
        assert!(store.recover_endpoint(elsewhere, endpoint.id, 0, true, now, 24).unwrap().is_none());
    });
}
