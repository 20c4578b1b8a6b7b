//! The operations the API's dialects share, under them: each takes an [`Owner`] (a
//! [`Mode`], for applications) and checked input and returns a domain error
//! ([`ServiceError`]); none knows actix or `ApiError`. What the process keeps in memory
//! about applications and keys ([`AppNames`], [`ApiKeys`]) is here too, so the operations
//! that change them can say so. The dialects (`api/`) translate requests and answers around them, so no
//! dialect imports another's file for a rule. Direction: `api -> service -> delivery ->
//! store`.
//!
//! [`Owner`]: crate::store::model::apps::Owner

pub mod all_deliveries;
pub mod api_keys;
pub mod app_names;
pub mod apps;
pub mod catalogue;
pub mod deliveries;
pub mod endpoints;
pub mod event_search;
pub mod events;
pub mod portal_sessions;
mod replay_matching;
pub mod replays;
pub mod sessions;

use crate::delivery::EngineError;
use crate::event_types::Source;
use crate::ids::AppId;
use crate::lifecycle::MoveError;
use crate::mode::Mode;
use crate::store::model::{AttemptStatus, ListError, StoreError};

pub use all_deliveries::DeliveryFilter;
pub use api_keys::ApiKeys;
pub use app_names::AppNames;
pub use apps::Apps;
pub use catalogue::{Catalogue, NewEventType};
pub use deliveries::{Deliveries, DeliveryWithBody, EndpointDeliveries};
pub use endpoints::Endpoints;
pub use events::Events;
pub use portal_sessions::PortalSessions;
pub use replays::Replays;
pub use sessions::Sessions;

/// Why a service operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter's value breaks a rule the service checks: one that needs the network or
    /// what the server holds (a URL whose host resolves to an address no webhook may go
    /// to, an event type the catalogue does not have, an endpoint that does not exist).
    #[error("{message}")]
    Invalid {
        /// The parameter at fault.
        param: &'static str,
        /// What is wrong, for the caller to fix.
        message: String,
    },
    /// A uid given for an application is another application's in the same mode: a uid
    /// names one application wherever an id is taken, so it cannot be shared.
    #[error("the uid `{uid}` is already used by {by}")]
    UidTaken {
        /// The uid asked for.
        uid: String,
        /// The application that has it.
        by: AppId,
    },
    /// The application to delete is its mode's default, which requests that name none act
    /// on: it cannot go.
    #[error("{app} is the default application of {mode} mode")]
    DefaultApp {
        /// The application.
        app: AppId,
        /// Its mode.
        mode: Mode,
    },
    /// An event's delivery to the endpoint named failed for good longer ago than the
    /// endpoint keeps undelivered payloads: the payload is no longer kept for it, so it
    /// cannot be sent there again.
    #[error("the payload is past its {hours}-hour undelivered-payload window")]
    PayloadExpired {
        /// The parameter that named the endpoint.
        param: &'static str,
        /// The endpoint's window, in hours.
        hours: u32,
    },
    /// A delivery attempt asked to go now has no retry scheduled: it has this status and
    /// nothing follows it.
    #[error("the attempt is `{}` and no retry of it is scheduled", .0.as_str())]
    NotScheduled(AttemptStatus),
    /// A retry asked to go now waits for its endpoint, which is disabled, to be enabled.
    #[error("the endpoint is disabled")]
    EndpointDisabled,
    /// A page's cursor names no object of the list: each dialect says so in its own
    /// parameter's name.
    #[error("the cursor names no object in this list")]
    UnknownCursor,
    /// An event type the API does not own (built in, or declared in `stile.toml`) was
    /// asked to change: it is changed where it comes from, if at all.
    #[error("the event type `{name}` is not managed through the API")]
    ReadOnlyType {
        /// The type's name.
        name: String,
        /// Where it comes from.
        from: Source,
    },
    /// A verification session's status does not allow the move asked for (nothing
    /// changed).
    #[error(transparent)]
    Refused(#[from] MoveError),
    /// A test helper was asked for in live mode, where sessions move only through real
    /// verification.
    #[error("test helpers work in test mode only")]
    TestModeOnly,
    /// The delivery engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something the server made could not be encoded: its fault, not the caller's.
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<ListError> for ServiceError {
    fn from(err: ListError) -> Self {
        match err {
            ListError::UnknownCursor => ServiceError::UnknownCursor,
            ListError::Store(err) => err.into(),
        }
    }
}

impl ServiceError {
    /// A refusal of `param`'s value, with what is wrong.
    pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid { param, message: message.into() }
    }
}
