//! The delivery engine: the owner of the queue. Publishing with group commit, every
//! other write that schedules or unschedules an attempt, the scheduler over the durable
//! queue, retry and health policy, signing, and the HTTP client. It knows nothing of
//! actix or of the API's error type; the API reaches it through [`Engine`]'s methods.

pub mod engine;
pub mod error;
mod handoff;
pub mod http;
mod messages;
pub mod policy;
mod scheduler;
pub mod signing;
mod writer;

pub use engine::{Engine, SessionMoved};
pub use error::EngineError;

use crate::store::endpoints::EndpointRecord;

/// Signs `body` with the endpoint's live secrets and POSTs it: what every attempt does,
/// queued or not. Returns the outcome and the headers sent.
pub async fn sign_and_send(
    sender: &http::HttpSender,
    endpoint: &EndpointRecord,
    event_id: &str,
    body: bytes::Bytes,
    now: i64,
) -> (http::SendOutcome, Vec<(String, String)>) {
    let secrets = signing::live_secrets(&endpoint.secrets, now);
    let headers = signing::delivery_headers(event_id, &secrets, now, &body);
    let outcome = sender.send(&endpoint.url, &headers, body).await;
    (outcome, headers)
}
