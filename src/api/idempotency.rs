//! `Idempotency-Key` on POST requests: the first 2xx response given for a key is stored
//! for 24 hours and replayed for a retry of the same request; a reuse of the key for a
//! different request is refused.
//!
//! Only successful responses are stored (as Stripe does for requests that fail
//! validation), so a client can fix a rejected request and retry it with the same key.
//! The record is written after the handler's own transaction commits: a crash in between
//! means a retry runs the request again, which is the at-least-once end of the trade-off.
//!
//! Exactly one request with a key runs at a time: this process holds the key in memory
//! ([`InFlight`]) *before* it looks for a stored answer, so a request that looked just
//! before another stored its answer cannot run the request again; on a database other
//! processes share, the store holds the key too (`Store::begin_idempotent`), so a
//! request to another process waits its turn the same way (409, then the replay).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use sha2::{Digest, Sha256};

use super::extract::read_body;
use super::{AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use crate::ids::AppId;
use crate::store::model::{IdempotencyBegin, IdempotencyRecord, Owner};

/// The request header carrying the key.
pub const HEADER: &str = "Idempotency-Key";

/// The header set on a replayed response.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// The longest key accepted, in bytes (Stripe's limit).
const MAX_KEY_BYTES: usize = 255;

/// Keys whose first request is still being handled, so a concurrent retry gets a 409
/// instead of running the request a second time.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    keys: Arc<Mutex<HashSet<(AppId, String)>>>,
}

impl InFlight {
    /// Claims a key; `None` if it is already claimed. The claim ends when the guard drops,
    /// however the request ends.
    fn claim(&self, app: AppId, key: &str) -> Option<Claim> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert((app, key.to_string())).then(|| Claim { owner: self.clone(), key: (app, key.to_string()) })
    }
}

struct Claim {
    owner: InFlight,
    key: (AppId, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.owner.keys.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// A key held for a running request in a database other processes share: let go when
/// dropped unless its answer was stored, however the request ends (an error, a failed
/// write, a dropped connection, a stop), so the key is not refused until its hold goes
/// stale. Holds nothing on a redb file, where the in-memory [`Claim`] is the hold.
struct StoreHold {
    state: web::Data<AppState>,
    owner: Owner,
    key: String,
    fingerprint: String,
    /// When the hold was taken: with the fingerprint, which marker is this request's.
    since: i64,
    /// Whether nothing is left to do: the answer was stored (it replaced the marker), or
    /// the key was let go.
    settled: bool,
}

impl StoreHold {
    /// Lets go of the key now, before the answer goes out, so a corrected retry finds it
    /// free at once.
    async fn let_go(mut self) {
        self.settled = true;
        if !self.state.store.is_shared() {
            return;
        }
        let (owner, key, fingerprint, since) = (self.owner, self.key.clone(), self.fingerprint.clone(), self.since);
        let let_go = self.state.store.abandon_idempotent(owner, key, fingerprint, since);
        if let Err(err) = let_go.await {
            tracing::warn!(error = %err, "an idempotency key could not be let go; it frees itself later");
        }
    }
}

impl Drop for StoreHold {
    fn drop(&mut self) {
        if self.settled || !self.state.store.is_shared() {
            return;
        }
        let store = std::sync::Arc::clone(&self.state.store);
        let (owner, key, fingerprint, since) =
            (self.owner, std::mem::take(&mut self.key), std::mem::take(&mut self.fingerprint), self.since);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            if let Err(err) = store.abandon_idempotent(owner, key, fingerprint, since).await {
                tracing::warn!(error = %err, "an idempotency key could not be let go; it frees itself later");
            }
        });
    }
}

/// What the first half of the middleware decided.
enum Before {
    /// No key, or not a POST: pass through untouched.
    PassThrough,
    /// Answer with this stored response.
    Replay(HttpResponse),
    /// Run the request, then store its response under the claimed key.
    Run { hold: StoreHold, claim: Claim },
}

/// Middleware: replays or records responses of POST requests that carry the header.
/// Must run after [`super::auth::require_api_key`], whose [`Caller`] scopes keys by application.
/// Its refusals are responses, not errors, so they pass through the boundary middleware
/// like any other answer.
pub async fn idempotent_posts(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Both let go of the key when dropped, however this ends.
    let (mut hold, _claim) = match before(&mut req).await {
        Err(err) => return Ok(req.error_response(err)),
        Ok(Before::PassThrough) => return Ok(next.call(req).await?.map_into_boxed_body()),
        Ok(Before::Replay(replay)) => return Ok(req.into_response(replay)),
        Ok(Before::Run { hold, claim }) => (hold, claim),
    };
    let response = next.call(req).await?;
    if !response.status().is_success() {
        // No answer to keep: the key is free for a corrected request.
        hold.let_go().await;
        return Ok(response.map_into_boxed_body());
    }
    let (request, response) = response.into_parts();
    let (head, response_body) = response.into_parts();
    let Ok(bytes) = body::to_bytes(response_body).await else {
        let err = ApiError::internal(&std::io::Error::other("a response body could not be collected"));
        return Ok(ServiceResponse::new(request, err.error_response()));
    };
    let record = IdempotencyRecord {
        fingerprint: hold.fingerprint.clone(),
        status: head.status().as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        created: hold.state.engine.clock().now(),
    };
    let (owner, key) = (hold.owner, hold.key.clone());
    match hold.state.store.put_idempotency_record(owner, key, record).await {
        Ok(()) => hold.settled = true,
        // The request itself succeeded and is committed; only its replay record is
        // missing, so a retry would run it again. Say so in the log, answer as done.
        Err(err) => tracing::warn!(error = %err, "idempotency record not stored"),
    }
    let mut head = head.set_body(BoxBody::new(bytes));
    head.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(ServiceResponse::new(request, head))
}

/// Checks the key, reads and fingerprints the body (putting it back for the handler),
/// and looks for a stored response.
async fn before(req: &mut ServiceRequest) -> Result<Before, ApiError> {
    let Some(raw_key) = req.headers().get(HEADER) else { return Ok(Before::PassThrough) };
    if req.method() != Method::POST {
        return Ok(Before::PassThrough);
    }
    let key = match raw_key.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_KEY_BYTES => k.trim().to_string(),
        _ => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyInvalid,
                format!("The {HEADER} header must be 1 to {MAX_KEY_BYTES} printable ASCII characters."),
            ));
        }
    };
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(missing_state)?;
    let owner = req.extensions().get::<Caller>().map(|c| c.owner).ok_or_else(missing_state)?;

    let mut payload = req.take_payload();
    let body = read_body(req.request(), &mut payload).await?;
    let fingerprint = fingerprint(req.method(), req.path(), req.query_string(), &body);
    req.set_payload(Payload::from(body));

    // Held before looking: whoever looks after this sees either the hold or the answer.
    let claim = state.idempotency.claim(owner.app, &key).ok_or_else(|| in_use(&key))?;
    let (lookup_key, print) = (key.clone(), fingerprint.clone());
    let now = state.engine.clock().now();
    let begun = state.store.begin_idempotent(owner, lookup_key, print, now).await?;
    let stored = match begun {
        IdempotencyBegin::Run => {
            let hold = StoreHold { state, owner, key, fingerprint, since: now, settled: false };
            return Ok(Before::Run { hold, claim });
        }
        IdempotencyBegin::InProgress => return Err(in_use(&key)),
        IdempotencyBegin::Answered(stored) => stored,
    };
    if stored.fingerprint != fingerprint {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            format!("The {HEADER} `{key}` was already used for a different request. Use a new key for a new request."),
        ));
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let replay = HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((REPLAYED_HEADER, "true"))
        .body(stored.body);
    Ok(Before::Replay(replay))
}

/// The 409 for a key whose first request is still running.
fn in_use(key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyInUse,
        format!("A request with the {HEADER} `{key}` is still being processed. Retry once it has finished."),
    )
}

fn missing_state() -> ApiError {
    ApiError::internal(&std::io::Error::other("idempotency middleware mounted without app state or auth"))
}

/// SHA-256 (hex) over what makes two requests "the same": method, path, query and body.
fn fingerprint(method: &Method, path: &str, query: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes(), query.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ_by_path_and_body_and_cannot_be_confused_by_shifting_bytes() {
        let a = fingerprint(&Method::POST, "/v1/a", "", b"{}");
        assert_eq!(a, fingerprint(&Method::POST, "/v1/a", "", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/v1/b", "", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/v1/a", "", b"{ }"));
        assert_ne!(fingerprint(&Method::POST, "/v1/ab", "", b"c"), fingerprint(&Method::POST, "/v1/a", "", b"bc"));
    }

    #[test]
    fn a_claim_is_exclusive_until_dropped() {
        let in_flight = InFlight::default();
        let claim = in_flight.claim(AppId(1), "k").unwrap();
        assert!(in_flight.claim(AppId(1), "k").is_none());
        assert!(in_flight.claim(AppId(2), "k").is_some(), "applications do not share keys");
        drop(claim);
        assert!(in_flight.claim(AppId(1), "k").is_some());
    }
}
