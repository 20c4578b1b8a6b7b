//! An OAuth2 token server and the receiver it guards, on one ephemeral loopback port:
//! `POST /token` grants client-credentials tokens (checking the client's id and secret in
//! HTTP Basic and the form, counting fetches, each token living `lifetime`), and
//! `POST /hook` takes a delivery only with a token it granted that is neither expired nor
//! revoked (else 401).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;

use super::receiver::Received;

/// What the server holds.
struct State {
    client_id: String,
    client_secret: String,
    /// How long a granted token lives (also its `expires_in`).
    lifetime: Duration,
    /// Status `/token` answers instead of a token (`None`: it grants).
    failing: Mutex<Option<u16>>,
    /// `/hook` refuses every token, granted or not (a receiver wanting another audience).
    refusing: std::sync::atomic::AtomicBool,
    /// Every token granted, with its expiry and whether it was revoked.
    tokens: Mutex<HashMap<String, (Instant, bool)>>,
    /// Every form `/token` was sent (decoded pairs).
    forms: Mutex<Vec<HashMap<String, String>>>,
    /// Each request to `/hook` and whether it was taken.
    hooks: Mutex<Vec<(Received, bool)>>,
}

/// The token server with its receiver.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Grants tokens living `lifetime` to the client `client_id` / `client_secret`.
    pub fn start(client_id: &str, client_secret: &str, lifetime: Duration) -> Self {
        let state = Arc::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            lifetime,
            failing: Mutex::new(None),
            refusing: std::sync::atomic::AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            forms: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
        });
        let shared = web::Data::from(Arc::clone(&state));
        let (base, stop, thread) = super::receiver::serve(move |app| {
            _ = app
                .app_data(shared.clone())
                .route("/token", web::post().to(grant))
                .route("/hook", web::post().to(hook));
        });
        Self { base, state, stop: Some(stop), thread: Some(thread) }
    }

    /// How many tokens were granted.
    pub fn fetches(&self) -> usize {
        self.state.forms.lock().unwrap().len()
    }

    /// Every form a token request sent.
    pub fn forms(&self) -> Vec<HashMap<String, String>> {
        self.state.forms.lock().unwrap().clone()
    }

    /// Every token granted so far.
    pub fn granted(&self) -> Vec<String> {
        self.state.tokens.lock().unwrap().keys().cloned().collect()
    }

    /// Revokes every token granted so far: `/hook` answers 401 to them.
    pub fn revoke_all(&self) {
        for (_, revoked) in self.state.tokens.lock().unwrap().values_mut() {
            *revoked = true;
        }
    }

    /// Makes `/hook` refuse every token (or take valid ones again).
    pub fn refuse_every_token(&self, refusing: bool) {
        self.state.refusing.store(refusing, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes `/token` answer `status` (and no token), or grant again with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        *self.state.failing.lock().unwrap() = status;
    }

    /// Every request to `/hook`: its `Authorization` and whether it was taken (2xx).
    pub fn hooks(&self) -> Vec<(String, bool)> {
        self.state
            .hooks
            .lock()
            .unwrap()
            .iter()
            .map(|(r, taken)| (r.header("authorization").to_string(), *taken))
            .collect()
    }

    /// Every request to `/hook` that was taken, whole.
    pub fn taken(&self) -> Vec<Received> {
        self.state.hooks.lock().unwrap().iter().filter(|(_, taken)| *taken).map(|(r, _)| r.clone()).collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn grant(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(status) = *state.failing.lock().unwrap() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(serde_json::json!({"error": "temporarily_unavailable"}));
    }
    // RFC 6749 §2.3.1: the id and the secret, each form-encoded, in HTTP Basic.
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("{}:{}", encode(&state.client_id), encode(&state.client_secret))
    };
    if presented.as_deref() != Some(expected.as_str()) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": "unsupported_grant_type"}));
    }
    let token = {
        let mut forms = state.forms.lock().unwrap();
        forms.push(form);
        format!("tok-{}", forms.len())
    };
    state.tokens.lock().unwrap().insert(token.clone(), (Instant::now() + state.lifetime, false));
    HttpResponse::Ok().json(serde_json::json!({
        "access_token": token, "token_type": "Bearer", "expires_in": state.lifetime.as_secs()
    }))
}

async fn hook(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers: HashMap<String, String> =
        req.headers().iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let authorization = headers.get("authorization").cloned().unwrap_or_default();
    let refusing = state.refusing.load(std::sync::atomic::Ordering::Relaxed);
    let valid = !refusing
        && authorization.strip_prefix("Bearer ").is_some_and(|token| {
            state
                .tokens
                .lock()
                .unwrap()
                .get(token)
                .is_some_and(|(expires, revoked)| !revoked && Instant::now() < *expires)
        });
    state.hooks.lock().unwrap().push((
        Received {
            method: req.method().to_string(),
            query: req.query_string().to_string(),
            headers,
            body: body.to_vec(),
            at: Instant::now(),
        },
        valid,
    ));
    if valid { HttpResponse::Ok().finish() } else { HttpResponse::Unauthorized().finish() }
}
