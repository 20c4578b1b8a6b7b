//! Portal sessions: kept by their token's hash, revoked by id, pruned once expired.

use crate::ids::PortalSessionId;
use crate::mode::Mode;
use crate::store::model::{Cutoffs, PortalSessionRecord, PruneCursor};

use super::each_backend;

#[tokio::test]
async fn expired_sessions_are_pruned_live_ones_stay_and_any_can_be_revoked_in_its_application() {
    each_backend(async |store| {
        let owner = store.test_owner(Mode::Test).await;
        let session = |expires_at| PortalSessionRecord {
            id: PortalSessionId::new(),
            app: owner.app,
            mode: owner.mode,
            created: 0,
            expires_at,
            read_only: false,
        };
        let (old, live, other) = (session(100), session(10_000), session(10_000));
        store.insert_portal_session([1; 32], old.clone()).await.unwrap();
        store.insert_portal_session([2; 32], live.clone()).await.unwrap();
        store.insert_portal_session([3; 32], other.clone()).await.unwrap();
        assert_eq!(store.portal_session([1; 32]).await.unwrap(), Some(old.clone()), "found expired or not");
        let cutoffs = Cutoffs { history_ms: 0, idempotency_secs: 0, now_ms: 5_000_000 };
        assert_eq!(store.prune(cutoffs, PruneCursor::default(), 10).await.unwrap().0.portal_sessions, 1);
        assert_eq!(store.portal_session([1; 32]).await.unwrap(), None);
        assert_eq!(store.portal_session([2; 32]).await.unwrap(), Some(live.clone()));
        assert!(!store.revoke_portal_session(owner, old.id).await.unwrap(), "its index entry went too");
        assert!(
            !store.revoke_portal_session(store.test_owner(Mode::Live).await, live.id).await.unwrap(),
            "another app's"
        );
        assert!(store.revoke_portal_session(owner, live.id).await.unwrap());
        assert_eq!(store.portal_session([2; 32]).await.unwrap(), None);
        assert_eq!(store.portal_session([3; 32]).await.unwrap(), Some(other), "only that one");
    })
    .await;
}
