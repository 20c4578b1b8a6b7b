//! Portal session operations: make one (its token, kept only as a hash, and when it
//! stops working), revoke one, and what a session signs in to. How the portal's routes
//! are guarded by a token is the API's (`api/portal_sessions.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::ServiceError;
use crate::config::Config;
use crate::delivery::Engine;
use crate::ids::PortalSessionId;
use crate::secrets::{hash_api_key, new_portal_token};
use crate::store::Store;
use crate::store::model::{AppRecord, Branding, Owner, PortalSessionRecord};

/// The portal session operations, over the store and the portal's configured look.
pub struct PortalSessions<'a> {
    /// Time.
    pub engine: &'a Engine,
    /// Where sessions are kept, by the hash of their token.
    pub store: &'a Arc<Store>,
    /// `[portal]`: the branding an application's own falls back to.
    pub config: &'a Config,
}

impl PortalSessions<'_> {
    /// Stores a new session signing in to `owner`'s application for `lifetime`, whose
    /// token is kept only as its hash. Returns the session and its token, in clear this
    /// once.
    pub async fn create(
        &self,
        owner: Owner,
        lifetime: Duration,
        read_only: bool,
    ) -> Result<(PortalSessionRecord, String), ServiceError> {
        let now = self.engine.clock().now();
        let token = new_portal_token();
        let record = PortalSessionRecord {
            id: PortalSessionId::new(),
            app: owner.app,
            mode: owner.mode,
            created: now,
            expires_at: now + lifetime.as_secs() as i64,
            read_only,
        };
        let hash = hash_api_key(&token);
        let stored = record.clone();
        self.store.insert_portal_session(hash, stored).await?;
        Ok((record, token))
    }

    /// The session whose token hashes to `hash`, however old (the caller checks whether
    /// it is still good); `None`: none.
    pub async fn find(&self, hash: [u8; 32]) -> Result<Option<PortalSessionRecord>, ServiceError> {
        Ok(self.store.portal_session(hash).await?)
    }

    /// Ends session `id` of `owner`'s application at once; `false`: no such session.
    pub async fn revoke(&self, owner: Owner, id: PortalSessionId) -> Result<bool, ServiceError> {
        Ok(self.store.revoke_portal_session(owner, id).await?)
    }

    /// The application a session of `owner` signs in to, and how the portal looks for
    /// it: its branding, with what it leaves unset taken from `[portal]`. `None`: the
    /// application is gone.
    pub async fn signed_in_to(&self, owner: Owner) -> Result<Option<(AppRecord, Branding)>, ServiceError> {
        let app = self.store.app(owner.mode, owner.app).await?;
        let defaults = self.config.portal.branding();
        Ok(app.map(|app| {
            let branding = app.branding.clone().or(&defaults);
            (app, branding)
        }))
    }
}
