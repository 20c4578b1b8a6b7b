//! The life of a verification session: which moves are allowed from which status, and
//! the event each emits. Shared by the API (helpers, cancel) and the expiry scheduler.

use crate::error::{ApiError, ErrorCode};
use crate::store::sessions::{OPEN_STATUSES, SessionRecord};

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
    pub fn target(self) -> &'static str {
        match self {
            Move::Process => "processing",
            Move::RequireInput => "requires_input",
            Move::Verify => "verified",
            Move::Fail => "failed",
            Move::Cancel => "cancelled",
            Move::Expire => "expired",
        }
    }

    /// The statuses this move may start from.
    pub fn from_statuses(self) -> &'static [&'static str] {
        match self {
            Move::Process => &["requires_input"],
            Move::RequireInput => &["processing"],
            Move::Verify | Move::Fail | Move::Cancel | Move::Expire => OPEN_STATUSES,
        }
    }

    /// Applies the move, or says why it is not allowed from the session's status.
    /// Returns the event type to emit.
    pub fn apply(self, session: &mut SessionRecord, now: i64) -> Result<&'static str, ApiError> {
        if !self.from_statuses().contains(&session.status.as_str()) {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!(
                    "This verification session's status is `{}`, so it cannot become `{}`; only a session in {} can.",
                    session.status,
                    self.target(),
                    self.from_statuses().iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
                ),
            ));
        }
        session.status = self.target().to_string();
        if self == Move::Verify {
            session.completed_at = Some(now);
        }
        Ok(match self {
            Move::Process => "verification_session.processing",
            Move::RequireInput => "verification_session.requires_input",
            Move::Verify => "verification_session.verified",
            Move::Fail => "verification_session.failed",
            Move::Cancel => "verification_session.cancelled",
            Move::Expire => "verification_session.expired",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::VerificationSessionId;

    fn session(status: &str) -> SessionRecord {
        SessionRecord {
            id: VerificationSessionId::new(),
            object: "verification_session".into(),
            status: status.into(),
            session_type: "identity".into(),
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
        let statuses = ["requires_input", "processing", "verified", "failed", "cancelled", "expired"];
        let moves = [Move::Process, Move::RequireInput, Move::Verify, Move::Fail, Move::Cancel, Move::Expire];
        for status in statuses {
            for step in moves {
                let mut s = session(status);
                let allowed = match step {
                    Move::Process => status == "requires_input",
                    Move::RequireInput => status == "processing",
                    _ => status == "requires_input" || status == "processing",
                };
                match step.apply(&mut s, 42) {
                    Ok(event) => {
                        assert!(allowed, "{step:?} from {status}");
                        assert_eq!(s.status, step.target());
                        assert_eq!(event, format!("verification_session.{}", step.target()));
                        assert_eq!(s.completed_at, (step == Move::Verify).then_some(42));
                    }
                    Err(err) => {
                        assert!(!allowed, "{step:?} from {status}");
                        assert_eq!(err.code, ErrorCode::InvalidState);
                        assert!(err.message.contains(status), "{}", err.message);
                        assert_eq!(s.status, status, "unchanged");
                    }
                }
            }
        }
    }
}
