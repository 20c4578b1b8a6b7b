//! The delivery engine: the owner of the queue. Publishing with group commit, every
//! other write that schedules or unschedules an attempt, the scheduler over the durable
//! queue, retry and health policy, signing, and the HTTP client. It knows nothing of
//! actix or of the API's error type; the API reaches it through [`Engine`]'s methods.

mod born_jobs;
pub mod engine;
pub mod error;
mod flow;
pub mod http;
pub mod listen_wire;
pub mod listeners;
#[cfg(test)]
mod loopback;
mod messages;
pub mod oauth2;
mod opened_secrets;
mod ping_rate;
pub mod policy;
pub mod proxy;
mod reused;
mod scheduler;
mod senders;
pub mod signing;
mod writer;

pub use engine::{Engine, SessionMoved};
pub use error::EngineError;
pub use ping_rate::PINGS_PER_SECOND;
pub use senders::{Outgoing, check_transformed};

/// The headers of a delivery of `body` at `now`, signed with `secrets` (an endpoint's
/// live secrets, in clear) in both schemes.
pub fn signed_headers(secrets: &[impl AsRef<str>], event_id: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
    let secrets: Vec<&str> = secrets.iter().map(AsRef::as_ref).collect();
    signing::delivery_headers(event_id, &secrets, now, body)
}
