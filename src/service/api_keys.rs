//! The API keys this server accepts and what each may do, in memory: loaded at start,
//! followed on a shared database, and changed when an application is deleted. The key
//! middleware (`api/auth.rs`) asks it; the application service tells it what changed.

use std::collections::HashMap;

use crate::ids::AppId;
use crate::mode::Mode;
use crate::secrets::hash_api_key;
use crate::store::model::ApiKeyRecord;

/// What a key may do: its mode, and the one application it is restricted to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The mode the key works in.
    pub mode: Mode,
    /// The application an app-restricted key acts on (and no other); `None`: any of the
    /// mode's applications.
    pub app: Option<AppId>,
}

/// The keys this server accepts, by SHA-256, with what each may do. Built at start-up
/// from the stored keys and the configured ones; keys are made and revoked through the
/// CLI while the server is stopped, except that deleting an application revokes its
/// restricted keys at once ([`ApiKeys::forget_app`]).
#[derive(Debug, Default)]
pub struct ApiKeys {
    by_hash: std::sync::RwLock<HashMap<[u8; 32], Grant>>,
}

impl ApiKeys {
    /// The configured keys (accepted as they are) and the stored ones (by hash).
    pub fn new(configured: &[String], stored: &[([u8; 32], ApiKeyRecord)]) -> Self {
        let mut by_hash = HashMap::new();
        for key in configured {
            if let Some(mode) = Mode::of_key(key) {
                by_hash.insert(hash_api_key(key), Grant { mode, app: None });
            }
        }
        for (hash, record) in stored {
            by_hash.insert(*hash, Grant { mode: record.mode, app: record.app });
        }
        Self { by_hash: std::sync::RwLock::new(by_hash) }
    }

    /// What a presented key may do, if the key is accepted. Keys are compared by hash, so
    /// the comparison reveals nothing about a stored key through timing.
    pub fn grant_of(&self, presented: &str) -> Option<Grant> {
        self.by_hash.read().unwrap_or_else(|p| p.into_inner()).get(&hash_api_key(presented)).copied()
    }

    /// Accepts exactly the configured keys and these stored ones from now on (what
    /// another process on the same database created or revoked).
    pub fn replace(&self, configured: &[String], stored: &[([u8; 32], ApiKeyRecord)]) {
        let fresh = ApiKeys::new(configured, stored).by_hash.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Stops accepting the keys restricted to `app` (it was deleted).
    pub fn forget_app(&self, app: AppId) {
        self.by_hash.write().unwrap_or_else(|p| p.into_inner()).retain(|_, grant| grant.app != Some(app));
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.by_hash.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key at all is accepted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_by_hash_with_their_mode() {
        let app = AppId::new();
        let restricted = ApiKeyRecord { prefix: "vk_test_r".into(), mode: Mode::Test, created: 0, app: Some(app) };
        let keys = ApiKeys::new(
            &["vk_test_one".into(), "vk_live_two".into(), "bogus".into()],
            &[(hash_api_key("vk_test_three"), restricted)],
        );
        assert_eq!(keys.grant_of("vk_test_one"), Some(Grant { mode: Mode::Test, app: None }));
        assert_eq!(keys.grant_of("vk_live_two"), Some(Grant { mode: Mode::Live, app: None }));
        assert_eq!(keys.grant_of("vk_test_three"), Some(Grant { mode: Mode::Test, app: Some(app) }));
        assert_eq!(keys.grant_of("vk_test_two"), None);
        assert_eq!(keys.len(), 3);
        keys.forget_app(app);
        assert_eq!(keys.grant_of("vk_test_three"), None, "a deleted application's keys stop working");
        assert_eq!(keys.len(), 2);
    }
}
