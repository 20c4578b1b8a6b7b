//! Verification session operations: create one and move it through its life. The rules
//! that are not about one API's shapes live here: how a new session starts and when it
//! expires by itself, that a refused move is the session's status's fault, and that
//! test helpers move test-mode sessions only. The moves themselves are `lifecycle.rs`'s;
//! the engine stores each with its event.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ServiceError;
use crate::config::Config;
use crate::delivery::{Engine, SessionMoved};
use crate::ids::VerificationSessionId;
use crate::lifecycle::Move;
use crate::mode::Mode;
use crate::store::Store;
use crate::store::model::{Owner, Page, PageRequest, SessionRecord, SessionStatus, SessionType};

/// A checked create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// `identity` or `document`.
    pub session_type: SessionType,
    /// The caller's own reference, if any.
    pub client_reference_id: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

/// The session operations, over the engine, the store and the configured session lifetime.
pub struct Sessions<'a> {
    /// Where sessions are stored and moved, with their events, and time.
    pub engine: &'a Engine,
    /// Where sessions are read from.
    pub store: &'a Arc<Store>,
    /// How long a session lasts unfinished (`verification_sessions.expires_after`, on the
    /// demo clock).
    pub config: &'a Config,
}

impl Sessions<'_> {
    /// Stores a new session of `owner` in `requires_input`, expiring by itself after the
    /// configured lifetime, with its `verification_session.created` event.
    pub async fn create(&self, owner: Owner, input: NewSession) -> Result<SessionRecord, ServiceError> {
        let now_ms = self.engine.clock().now_ms();
        let lifetime = self.config.scaled(self.config.verification_sessions.expires_after);
        let expires_ms = now_ms + lifetime.as_millis() as u64;
        let session = SessionRecord {
            id: VerificationSessionId::new(),
            app: owner.app,
            status: SessionStatus::RequiresInput,
            session_type: input.session_type,
            client_reference_id: input.client_reference_id,
            livemode: owner.mode.is_live(),
            expires_at: (expires_ms / 1000) as i64,
            completed_at: None,
            created: (now_ms / 1000) as i64,
            metadata: input.metadata,
        };
        Ok(self.engine.create_session(session, expires_ms).await?)
    }

    /// Session `id` of `owner`; `None`: no such session.
    pub async fn get(&self, owner: Owner, id: VerificationSessionId) -> Result<Option<SessionRecord>, ServiceError> {
        Ok(self.store.session(owner, id).await?)
    }

    /// A page of `owner`'s sessions, newest first.
    pub async fn list(
        &self,
        owner: Owner,
        request: PageRequest<VerificationSessionId>,
    ) -> Result<Page<SessionRecord>, ServiceError> {
        Ok(self.store.list_sessions(owner, request).await?)
    }

    /// Applies `step` to session `id` of `owner` and emits its event, in one transaction;
    /// refuses a move the session's status does not allow. Returns the session after the
    /// move; `None`: no such session.
    pub async fn apply(
        &self,
        owner: Owner,
        id: VerificationSessionId,
        step: Move,
    ) -> Result<Option<SessionRecord>, ServiceError> {
        match self.engine.move_session(owner, id, step).await? {
            SessionMoved::Moved(session) => Ok(Some(session)),
            SessionMoved::Refused(refusal) => Err(refusal.into()),
            SessionMoved::Missing => Ok(None),
        }
    }
}

/// Refuses the test helpers (moves a real verification would make) in live mode, where
/// sessions move only through real verification. Asked before the session is looked at.
pub fn may_simulate(mode: Mode) -> Result<(), ServiceError> {
    match mode {
        Mode::Live => Err(ServiceError::TestModeOnly),
        Mode::Test => Ok(()),
    }
}
