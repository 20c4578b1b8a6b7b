//! Verification sessions, portal sessions and idempotency records: short-lived state with an expiry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, PortalSessionId, VerificationSessionId};
use crate::mode::Mode;
use crate::store::model::StoreError;
use crate::store::sealing::Sealer;

use super::apps::Owner;
use super::queue::Scheduled;
/// Where a verification session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the person to submit (the first status).
    RequiresInput,
    /// Being checked.
    Processing,
    /// Verified (final).
    Verified,
    /// Could not be verified (final).
    Failed,
    /// Cancelled by the platform (final).
    Cancelled,
    /// Expired before it ended (final).
    Expired,
}

impl SessionStatus {
    /// Every status, in the order of a session's life.
    pub const ALL: [SessionStatus; 6] = [
        SessionStatus::RequiresInput,
        SessionStatus::Processing,
        SessionStatus::Verified,
        SessionStatus::Failed,
        SessionStatus::Cancelled,
        SessionStatus::Expired,
    ];

    /// The statuses a session can still move from; the others are final. The life-cycle
    /// rules and retention share this one list.
    pub const OPEN: &[SessionStatus] = &[SessionStatus::RequiresInput, SessionStatus::Processing];

    /// The status as the API and events write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::RequiresInput => "requires_input",
            SessionStatus::Processing => "processing",
            SessionStatus::Verified => "verified",
            SessionStatus::Failed => "failed",
            SessionStatus::Cancelled => "cancelled",
            SessionStatus::Expired => "expired",
        }
    }

    /// Whether a session in this status can still move (it is one of [`Self::OPEN`]).
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verification session verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// A person's identity.
    Identity,
    /// An identity document.
    Document,
}

impl SessionType {
    /// The type named `name` in the API, if there is one.
    pub fn from_name(name: &str) -> Option<SessionType> {
        match name {
            "identity" => Some(SessionType::Identity),
            "document" => Some(SessionType::Document),
            _ => None,
        }
    }
}

/// A verification session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `vks_...`
    pub id: VerificationSessionId,
    /// The application it belongs to.
    pub app: AppId,
    /// Where it stands.
    pub status: SessionStatus,
    /// `identity` or `document`.
    #[serde(rename = "type")]
    pub session_type: SessionType,
    /// The caller's own reference, if given.
    pub client_reference_id: Option<String>,
    /// Whether it belongs to live mode.
    pub livemode: bool,
    /// When it expires by itself if not finished (Unix seconds).
    pub expires_at: i64,
    /// When it was verified (Unix seconds).
    pub completed_at: Option<i64>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// String pairs.
    pub metadata: BTreeMap<String, String>,
}

impl SessionRecord {
    /// The mode of the session.
    pub fn mode(&self) -> Mode {
        if self.livemode { Mode::Live } else { Mode::Test }
    }

    /// Whose it is.
    pub fn owner(&self) -> Owner {
        Owner { app: self.app, mode: self.mode() }
    }

    /// Whether the session can still move: an open session is kept by retention until it
    /// ends, by a move or by expiring.
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

/// What a session change did.
#[derive(Debug)]
pub struct SessionChanged {
    /// The session after the change.
    pub session: SessionRecord,
    /// The deliveries its event queued.
    pub scheduled: Scheduled,
    /// Subscribed endpoints whose content filter refused its event (no delivery).
    pub filtered: u32,
}

/// What [`QueueWrites::change_session`](crate::store::QueueWrites::change_session) did.
#[derive(Debug)]
pub enum SessionChange<R> {
    /// The session moved and its event was published.
    Changed(SessionChanged),
    /// The change refused (nothing was written).
    Refused(R),
    /// No such session in this application.
    Missing,
}

/// A portal session as stored (under its token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSessionRecord {
    /// Its id, to revoke it by.
    pub id: PortalSessionId,
    /// The one application it signs in to.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When its token stops working (Unix seconds).
    pub expires_at: i64,
    /// Whether it may only look.
    pub read_only: bool,
}

impl PortalSessionRecord {
    /// The application it acts on.
    pub fn owner(&self) -> Owner {
        Owner { app: self.app, mode: self.mode }
    }
}

/// How long a stored response is replayed, in seconds (24 hours, as Stripe). Past it a
/// key is new again, and retention may drop the record.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// How long a request in progress holds its key on a database other processes share, in
/// seconds: past it the claim is taken to be abandoned (its process died mid-request)
/// and the key may run again. Far above the longest request (reading it is bounded by
/// `[server] request_timeout`, a test ping by the delivery timeout).
pub const IN_PROGRESS_STALE_SECS: i64 = 300;

/// What a request with an idempotency key finds when it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// Nothing answered under the key yet: run the request (on a shared database the key
    /// is now held for it).
    Run,
    /// The answer stored for the key: replay it (if the request is the same).
    Answered(IdempotencyRecord),
    /// Another process is running a request with this key.
    InProgress,
}

/// The first response given to a request with a given key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 (hex) of the method, path and body of the request, so a reuse of the key
    /// for a different request is detected.
    pub fingerprint: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered.
    pub body: String,
    /// When it was stored (Unix seconds); records older than the idempotency window are
    /// treated as absent.
    pub created: i64,
}

impl IdempotencyRecord {
    /// The marker a shared database holds under a key while its request runs: status 0,
    /// no body.
    pub(crate) fn in_progress(fingerprint: &str, now: i64) -> IdempotencyRecord {
        IdempotencyRecord { fingerprint: fingerprint.to_string(), status: 0, body: String::new(), created: now }
    }

    /// Whether this is the marker of a request still running, not an answer.
    pub fn is_in_progress(&self) -> bool {
        self.status == 0
    }

    /// What a request that finds this record under its key at `now` does.
    pub(crate) fn begin(found: Option<IdempotencyRecord>, now: i64) -> IdempotencyBegin {
        match found {
            Some(record) if record.is_in_progress() && now - record.created < IN_PROGRESS_STALE_SECS => {
                IdempotencyBegin::InProgress
            }
            Some(record) if !record.is_in_progress() && now - record.created < WINDOW_SECS => {
                IdempotencyBegin::Answered(record)
            }
            _ => IdempotencyBegin::Run,
        }
    }

    /// The record as stored: its body sealed to `owner`'s application and `key`.
    pub(crate) fn sealed(&self, sealer: &Sealer, owner: Owner, key: &str) -> IdempotencyRecord {
        IdempotencyRecord {
            body: sealer.seal_text(&idempotency_row(owner.app.as_u128(), key), &self.body),
            ..self.clone()
        }
    }

    /// The record as read back: its body opened.
    pub(crate) fn opened(mut self, sealer: &Sealer, owner: Owner, key: &str) -> Result<IdempotencyRecord, StoreError> {
        self.body = sealer.open_text(&idempotency_row(owner.app.as_u128(), key), self.body)?;
        Ok(self)
    }
}

/// The row a stored response belongs to (its application and key), sealed with it.
pub(crate) fn idempotency_row(app: u128, key: &str) -> Vec<u8> {
    let mut row = app.to_be_bytes().to_vec();
    row.extend_from_slice(key.as_bytes());
    row
}
