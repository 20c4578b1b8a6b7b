//! API keys: kept by hash, revoked by a prefix that names one.

use crate::mode::Mode;
use crate::store::model::{ApiKeyRecord, Revoked};

use super::each_backend;

#[tokio::test]
async fn api_keys_are_kept_by_hash_and_revoked_by_an_unambiguous_prefix() {
    each_backend(async |store| {
        let key = |prefix: &str, created| ApiKeyRecord { prefix: prefix.into(), mode: Mode::Test, created, app: None };
        store.insert_api_key([1; 32], key("vk_test_ab1", 2)).await.unwrap();
        store.insert_api_key([2; 32], key("vk_test_ab2", 1)).await.unwrap();
        store.insert_api_key([3; 32], key("vk_test_a%_", 3)).await.unwrap();
        let keys = store.api_keys().await.unwrap();
        assert_eq!(keys.iter().map(|k| k.0[0]).collect::<Vec<_>>(), vec![2, 1, 3], "oldest first");
        assert_eq!(keys[0].1, key("vk_test_ab2", 1));
        assert!(
            matches!(store.revoke_api_key("vk_test_ab".into()).await.unwrap(), Revoked::Ambiguous(v) if v.len() == 2)
        );
        assert_eq!(store.revoke_api_key("vk_test_x".into()).await.unwrap(), Revoked::NoMatch);
        assert_eq!(
            store.revoke_api_key("vk_test_a%".into()).await.unwrap(),
            Revoked::One(key("vk_test_a%_", 3)),
            "no wildcard"
        );
        assert_eq!(store.revoke_api_key("vk_test_ab1".into()).await.unwrap(), Revoked::One(key("vk_test_ab1", 2)));
        assert_eq!(store.api_keys().await.unwrap().len(), 1);
    })
    .await;
}
