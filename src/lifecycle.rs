//! The life of a verification session: which moves are allowed from which status, and
//! the event each emits, with the session object it carries. Shared by the delivery
//! engine (API moves and expiry); pure, so the rules are tested without a store.

use crate::payload::new_event;
use crate::store::model::{NewEvent, SessionRecord, SessionStatus};

/// A move in a session's life, each emitting its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// `requires_input` → `processing`.
    Process,
    /// `processing` → `requires_input`.
    RequireInput,
    /// → `verified` (final).
    Verify,
    /// → `failed` (final).
    Fail,
    /// → `cancelled` (final).
    Cancel,
    /// → `expired` (final).
    Expire,
}

/// Why a move was not made.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The session's status does not allow the move.
    #[error(
        "This verification session's status is `{from}`, so it cannot become `{to}`; only a session in {} can.",
        allowed.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
    )]
    NotAllowed {
        /// The session's status.
        from: SessionStatus,
        /// The status the move leads to.
        to: SessionStatus,
        /// The statuses the move may start from.
        allowed: &'static [SessionStatus],
    },
    /// The event announcing the move could not be encoded.
    #[error("cannot encode the session's event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Move {
    /// The helper action of this move (`process`, `require_input`, ...).
    pub fn from_action(action: &str) -> Option<Move> {
        Some(match action {
            "process" => Move::Process,
            "require_input" => Move::RequireInput,
            "verify" => Move::Verify,
            "fail" => Move::Fail,
            "expire" => Move::Expire,
            _ => return None,
        })
    }

    /// The status a session has after this move.
    pub fn target(self) -> SessionStatus {
        match self {
            Move::Process => SessionStatus::Processing,
            Move::RequireInput => SessionStatus::RequiresInput,
            Move::Verify => SessionStatus::Verified,
            Move::Fail => SessionStatus::Failed,
            Move::Cancel => SessionStatus::Cancelled,
            Move::Expire => SessionStatus::Expired,
        }
    }

    /// The statuses this move may start from.
    pub fn from_statuses(self) -> &'static [SessionStatus] {
        match self {
            Move::Process => &[SessionStatus::RequiresInput],
            Move::RequireInput => &[SessionStatus::Processing],
            Move::Verify | Move::Fail | Move::Cancel | Move::Expire => SessionStatus::OPEN,
        }
    }

    /// Applies the move at `now` (Unix seconds) and returns the event announcing it, or
    /// says why the session's status does not allow it (the session is then unchanged).
    pub fn apply(self, session: &mut SessionRecord, now: i64) -> Result<NewEvent, MoveError> {
        if !self.from_statuses().contains(&session.status) {
            return Err(MoveError::NotAllowed {
                from: session.status,
                to: self.target(),
                allowed: self.from_statuses(),
            });
        }
        let before = session.clone();
        session.status = self.target();
        if self == Move::Verify {
            session.completed_at = Some(now);
        }
        let event = announce(session, &format!("verification_session.{}", session.status), now);
        event.inspect_err(|_| *session = before).map_err(MoveError::from)
    }
}

/// The `verification_session.created` event of a new session.
pub fn created(session: &SessionRecord, now: i64) -> Result<NewEvent, serde_json::Error> {
    announce(session, "verification_session.created", now)
}

/// An event of `event_type` carrying the session as it is now.
fn announce(session: &SessionRecord, event_type: &str, now: i64) -> Result<NewEvent, serde_json::Error> {
    new_event(session.owner(), event_type, &session_object(session), u64::try_from(now).unwrap_or(0) * 1000)
}

/// The session as events carry it: the same object `GET /v1/verification_sessions/:id`
/// answers with (the API's view mirrors it field for field).
pub fn session_object(session: &SessionRecord) -> serde_json::Value {
    serde_json::json!({
        "id": session.id,
        "object": "verification_session",
        "status": session.status,
        "type": session.session_type,
        "client_reference_id": session.client_reference_id,
        "livemode": session.livemode,
        "expires_at": session.expires_at,
        "completed_at": session.completed_at,
        "created": session.created,
        "metadata": session.metadata,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::VerificationSessionId;

    fn session(status: SessionStatus) -> SessionRecord {
        SessionRecord {
            id: VerificationSessionId::new(),
            app: crate::ids::AppId::new(),
            status,
            session_type: crate::store::model::sessions::SessionType::Identity,
            client_reference_id: None,
            livemode: false,
            expires_at: 0,
            completed_at: None,
            created: 0,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn every_move_from_every_status() {
        use SessionStatus::*;
        let moves = [Move::Process, Move::RequireInput, Move::Verify, Move::Fail, Move::Cancel, Move::Expire];
        for status in SessionStatus::ALL {
            for step in moves {
                let mut s = session(status);
                let allowed = match step {
                    Move::Process => status == RequiresInput,
                    Move::RequireInput => status == Processing,
                    _ => status == RequiresInput || status == Processing,
                };
                match step.apply(&mut s, 42) {
                    Ok(event) => {
                        assert!(allowed, "{step:?} from {status}");
                        assert_eq!(s.status, step.target());
                        assert_eq!(event.meta.event_type, format!("verification_session.{}", step.target()));
                        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
                        assert_eq!(body["data"]["status"], step.target().as_str());
                        assert_eq!(body["data"]["id"], s.id.to_string());
                        assert_eq!(s.completed_at, (step == Move::Verify).then_some(42));
                    }
                    Err(err) => {
                        assert!(!allowed, "{step:?} from {status}");
                        assert!(matches!(err, MoveError::NotAllowed { .. }));
                        assert!(err.to_string().contains(status.as_str()), "{err}");
                        assert_eq!(s.status, status, "unchanged");
                    }
                }
            }
        }
    }
}
