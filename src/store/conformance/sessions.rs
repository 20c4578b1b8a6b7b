//! Verification sessions, as the tests make and move them (which moves are allowed is
//! `crate::lifecycle`'s, above the store).

use crate::ids::VerificationSessionId;
use crate::mode::Mode;
use crate::store::model::events::test_event;
use crate::store::model::{NewEvent, Owner, SessionRecord, SessionStatus, SessionType};

/// A session of `owner`, made at `now_ms`, expiring at `expires_ms`, not stored.
pub(super) fn session(owner: Owner, status: SessionStatus, now_ms: u64, expires_ms: u64) -> SessionRecord {
    SessionRecord {
        id: VerificationSessionId::new(),
        app: owner.app,
        status,
        session_type: SessionType::Identity,
        client_reference_id: None,
        livemode: owner.mode == Mode::Live,
        expires_at: (expires_ms / 1000) as i64,
        completed_at: None,
        created: (now_ms / 1000) as i64,
        metadata: Default::default(),
    }
}

/// The event of `session`'s move to where it is, at `at_ms`.
pub(super) fn moved(session: &SessionRecord, at_ms: u64) -> NewEvent {
    let data = serde_json::json!({"id": session.id.to_string(), "status": session.status.as_str()});
    test_event(session.owner(), &format!("verification_session.{}", session.status), data, at_ms)
}

/// Moves an open session to `status`, with its event at `at_ms`; refuses an ended one.
pub(super) fn move_to(
    status: SessionStatus,
    at_ms: u64,
) -> impl Fn(&mut SessionRecord) -> Result<NewEvent, SessionStatus> + Copy {
    move |session| {
        if !session.is_open() {
            return Err(session.status);
        }
        session.status = status;
        Ok(moved(session, at_ms))
    }
}
