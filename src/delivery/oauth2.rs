//! OAuth2 tokens for endpoints whose `authentication` is a client-credentials grant: one
//! token per endpoint, fetched from its `token_url` (RFC 6749 §4.4) through the delivery
//! client (the same address checks, TLS and timeout), kept until shortly before it
//! expires, and shared by every request to the endpoint. A burst of deliveries makes one
//! fetch: the first waits for it and the rest wait for the first. A 401 from the receiver
//! drops the token it was sent with (once, however many requests saw it), so the next
//! request fetches a new one; if that one is refused too (a receiver that wants another
//! audience, say), it is kept for [`MIN_REFETCH_AFTER_REFUSAL`] rather than replaced on
//! every attempt, so a misconfigured endpoint cannot hammer the token endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::http::HttpSender;
use crate::ids::EndpointId;
use crate::store::model::receiver_auth::ClientCredentials;

/// The most of a token endpoint's answer read, in bytes (a token, even a JWT, is far
/// smaller).
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// How long a token without `expires_in` is kept.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest a token is kept, whatever its `expires_in`.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long before its expiry a token is replaced: a tenth of its lifetime, at most this.
const MAX_EARLY: Duration = Duration::from_secs(60);

/// How long a token fetched because the one before was refused is kept when the receiver
/// refuses it too.
pub const MIN_REFETCH_AFTER_REFUSAL: Duration = Duration::from_secs(60);

/// Why no token could be had: said on the attempt, as the token endpoint's failure (not
/// the receiver's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(pub String);

/// A token in use.
#[derive(Debug, Clone)]
struct Token {
    /// The access token.
    value: String,
    /// Replaced from then on.
    refresh_at: Instant,
    /// Which fetch made it, so many 401s for it drop it once.
    generation: u64,
    /// The credentials it was fetched with: changed credentials fetch anew.
    fetched_for: u64,
    /// The version of the endpoint whose credentials fetched it (when it was last
    /// changed): a request still holding older credentials uses it rather than replace it.
    version: i64,
    /// When it was fetched.
    fetched_at: Instant,
    /// It was fetched because the receiver refused the one before.
    replaces_refused: bool,
}

/// One endpoint's token, and whether the next fetch replaces a refused one.
#[derive(Default)]
struct SlotState {
    token: Option<Token>,
    refused: bool,
}

/// One endpoint's token, behind an async lock held across a fetch (the single flight).
type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// The tokens of every endpoint with a client-credentials grant, in this process.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<EndpointId, Slot>>,
    generations: std::sync::atomic::AtomicU64,
}

/// A token handed out: its value and its generation (for [`TokenCache::rejected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The access token.
    pub value: String,
    /// Which fetch made it.
    pub generation: u64,
}

impl TokenCache {
    /// `endpoint`'s token: the one kept, or a new one fetched with `client` (the
    /// credentials of the endpoint as of `version`, when it was last changed) through
    /// `http`. A token fetched with newer credentials is used as it is.
    pub async fn token(
        &self,
        endpoint: EndpointId,
        (client, version): (&ClientCredentials, i64),
        http: &HttpSender,
    ) -> Result<IssuedToken, TokenError> {
        let slot = self.slot(endpoint);
        let mut state = slot.lock().await;
        let fingerprint = fingerprint(client);
        if let Some(token) = state
            .token
            .as_ref()
            .filter(|t| (t.fetched_for == fingerprint || t.version > version) && Instant::now() < t.refresh_at)
        {
            return Ok(IssuedToken { value: token.value.clone(), generation: token.generation });
        }
        let (value, lifetime) = fetch(client, http).await?;
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let early = (lifetime / 10).min(MAX_EARLY);
        let now = Instant::now();
        let replaces_refused = std::mem::take(&mut state.refused);
        state.token = Some(Token {
            value: value.clone(),
            refresh_at: now + lifetime - early,
            generation,
            fetched_for: fingerprint,
            version,
            fetched_at: now,
            replaces_refused,
        });
        Ok(IssuedToken { value, generation })
    }

    /// The receiver refused `token` (401): it is dropped if still kept, so the next
    /// request fetches a new one; unless it was itself fetched for a refused one less
    /// than [`MIN_REFETCH_AFTER_REFUSAL`] ago (then the receiver refuses what the token
    /// endpoint gives, and asking again would not help).
    pub async fn rejected(&self, endpoint: EndpointId, token: &IssuedToken) {
        let slot = self.slot(endpoint);
        let mut state = slot.lock().await;
        let Some(kept) = state.token.as_ref().filter(|t| t.generation == token.generation) else { return };
        if kept.replaces_refused && kept.fetched_at.elapsed() < MIN_REFETCH_AFTER_REFUSAL {
            return;
        }
        state.token = None;
        state.refused = true;
    }

    fn slot(&self, endpoint: EndpointId) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(endpoint).or_default())
    }
}

/// A hash of the credentials, to notice they changed.
fn fingerprint(client: &ClientCredentials) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&client.token_url, &client.client_id, &client.client_secret, &client.scope, &client.audience).hash(&mut hasher);
    hasher.finish()
}

/// Asks `client.token_url` for a token: a form POST (`grant_type=client_credentials`,
/// `scope`, `audience`) with the client's id and secret in HTTP Basic (RFC 6749 §2.3.1,
/// which every server must take). Returns the token and how long it lives.
async fn fetch(client: &ClientCredentials, http: &HttpSender) -> Result<(String, Duration), TokenError> {
    use base64::Engine;
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &client.scope {
            form.append_pair("scope", scope);
        }
        if let Some(audience) = &client.audience {
            form.append_pair("audience", audience);
        }
        form.finish()
    };
    // Each part form-encoded first, as §2.3.1 says.
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = format!("{}:{}", encode(&client.client_id), encode(&client.client_secret));
    let headers = [
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), concat!("stile/", env!("CARGO_PKG_VERSION"), " (+webhooks)").to_string()),
        ("authorization".to_string(), format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(basic))),
    ];
    let failed = |why: String| TokenError(format!("token endpoint: {why}"));
    let (status, body) =
        http.post(&client.token_url, &headers, Bytes::from(form), MAX_TOKEN_RESPONSE_BYTES).await.map_err(failed)?;
    if !(200..300).contains(&status) {
        let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(failed(format!("HTTP {status}: {excerpt}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        token_type: Option<String>,
        /// Seconds, as a number or (some providers) a string of one.
        expires_in: Option<serde_json::Value>,
    }
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|e| failed(format!("the answer is not a token response ({e})")))?;
    if answer.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(failed(format!("a token of type {:?}, not Bearer", answer.token_type.unwrap_or_default())));
    }
    if answer.access_token.is_empty() || !answer.access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(failed("an empty or unprintable access_token".into()));
    }
    Ok((answer.access_token, lifetime(answer.expires_in)))
}

/// How long a token lives by its `expires_in`: seconds as a number or a string of one
/// (some providers send that); none: [`DEFAULT_LIFETIME`]; at most [`MAX_LIFETIME`]; zero
/// or less: used for the request that fetched it only.
fn lifetime(expires_in: Option<serde_json::Value>) -> Duration {
    let seconds = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds.filter(|s| s.is_finite()) {
        Some(seconds) if seconds > 0.0 => Duration::from_secs_f64(seconds.min(MAX_LIFETIME.as_secs_f64())),
        Some(_) => Duration::ZERO,
        None => DEFAULT_LIFETIME,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A token endpoint on loopback that grants `tok-<n>` to every request; counts them.
    async fn token_endpoint() -> (String, Arc<AtomicUsize>) {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let base = crate::delivery::loopback::serve(move |_path| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let body = format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":60}}"#);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            }
        })
        .await;
        (format!("{base}/token"), fetches)
    }

    #[tokio::test]
    async fn a_request_holding_older_credentials_uses_the_newer_token_instead_of_replacing_it() {
        let (token_url, fetches) = token_endpoint().await;
        let http = HttpSender::new(&crate::config::Config::default());
        let client = |secret: &str| ClientCredentials {
            token_url: token_url.clone(),
            client_id: "stile".into(),
            client_secret: secret.into(),
            scope: None,
            audience: None,
        };
        let (cache, endpoint) = (TokenCache::default(), EndpointId::new());
        let new = cache.token(endpoint, (&client("new"), 2), &http).await.unwrap();
        assert_eq!(new.value, "tok-1");
        // A request that read the endpoint before its credentials changed.
        let stale = cache.token(endpoint, (&client("old"), 1), &http).await.unwrap();
        assert_eq!(
            (stale.value.as_str(), fetches.load(Ordering::SeqCst)),
            ("tok-1", 1),
            "replaced by older credentials"
        );
        // Newer credentials than the token's: fetched anew.
        let newer = cache.token(endpoint, (&client("newer"), 3), &http).await.unwrap();
        assert_eq!((newer.value.as_str(), fetches.load(Ordering::SeqCst)), ("tok-2", 2));
        // A refusal drops it once; the token fetched for it, refused too, is kept.
        cache.rejected(endpoint, &newer).await;
        let again = cache.token(endpoint, (&client("newer"), 3), &http).await.unwrap();
        assert_eq!(again.value, "tok-3");
        cache.rejected(endpoint, &again).await;
        let kept = cache.token(endpoint, (&client("newer"), 3), &http).await.unwrap();
        assert_eq!(
            (kept.value.as_str(), fetches.load(Ordering::SeqCst)),
            ("tok-3", 3),
            "refetched after a second refusal"
        );
    }

    #[test]
    fn expires_in_is_read_as_a_number_or_a_string_of_one_and_bounded() {
        let read = |v: serde_json::Value| lifetime(Some(v));
        assert_eq!(read(serde_json::json!(3599)), Duration::from_secs(3599));
        assert_eq!(read(serde_json::json!("3599")), Duration::from_secs(3599), "Azure AD v1 sends a string");
        assert_eq!(read(serde_json::json!(1.5)), Duration::from_millis(1500));
        assert_eq!(read(serde_json::json!(10_000_000)), MAX_LIFETIME);
        assert_eq!(read(serde_json::json!(0)), Duration::ZERO);
        assert_eq!(read(serde_json::json!("soon")), DEFAULT_LIFETIME);
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
    }
}
