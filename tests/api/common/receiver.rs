//! A real HTTP receiver for deliveries: records every request and answers per path as
//! told (2xx, 5xx, redirect, stall, fail the first n). It verifies signatures with its
//! own code, written from the specification, never with stile's signer.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::eventually;

/// How the receiver answers on a path.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with a small JSON body.
    Ok,
    /// This status.
    Status(u16),
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// A 302 to another path.
    Redirect,
    /// Waits this long, then answers 200.
    Delay(Duration),
    /// 500 the first time an event (by `webhook-id`) arrives, 200 after.
    FailFirstPerEvent,
    /// This status with `Retry-After: <value>` for the first request, then 200.
    RetryAfterOnce(u16, &'static str),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request's method.
    pub method: String,
    /// Its query string (without the `?`).
    pub query: String,
    /// Header names (lower case) → values.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `stile-signature` (`t=..,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`)
    /// carries a valid signature for `secret`, and how many `v1` values it carries.
    pub fn stile_signature_valid(&self, secret: &str) -> (bool, usize) {
        let header = self.header("stile-signature");
        let mut t = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            if let Some(v) = part.strip_prefix("t=") {
                t = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("v1=") {
                signatures.push(v.to_string());
            }
        }
        let Some(t) = t else { return (false, signatures.len()) };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let expected = hex::encode(mac.finalize().into_bytes());
        (signatures.contains(&expected), signatures.len())
    }

    /// Whether the Standard Webhooks headers carry a valid signature for `secret`
    /// (key = base64-decoded part after `whsec_`, message = `<id>.<t>.<body>`), and how
    /// many `v1,` values `webhook-signature` carries.
    pub fn standard_signature_valid(&self, secret: &str) -> (bool, usize) {
        let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", self.header("webhook-id"), self.header("webhook-timestamp")).as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
        let given: Vec<&str> = self.header("webhook-signature").split(' ').collect();
        (given.contains(&expected.as_str()), given.len())
    }
}

impl Received {
    /// Checks this delivery with the reference libraries (`standardwebhooks` and Stripe's
    /// `verify_header`, run by `.ci/verifiers/verify.py` in the Python that
    /// `STILE_VERIFIER_PYTHON` names, which `.ci/run` sets up). `Err` says what a library
    /// refused. Without that Python the check is skipped (`Ok(false)`), except in CI,
    /// where it fails.
    pub fn verify_with_libraries(&self, secret: &str) -> Result<bool, String> {
        let Ok(python) = std::env::var("STILE_VERIFIER_PYTHON") else {
            assert!(std::env::var("CI").is_err(), "CI must set STILE_VERIFIER_PYTHON (.ci/verifiers/setup)");
            eprintln!("skipping the reference-library check: STILE_VERIFIER_PYTHON is not set");
            return Ok(false);
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("delivery.json");
        let body = String::from_utf8(self.body.clone()).map_err(|e| e.to_string())?;
        let delivery = serde_json::json!({ "secret": secret, "body": body, "headers": self.headers });
        std::fs::write(&file, delivery.to_string()).expect("write the delivery");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/verifiers/verify.py");
        let out = std::process::Command::new(python).arg(script).arg(&file).output().expect("run the verifier");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && said == "ok" {
            Ok(true)
        } else {
            Err(format!("{said} {}", String::from_utf8_lossy(&out.stderr)))
        }
    }
}

#[derive(Default)]
struct State {
    behaviours: Mutex<HashMap<String, Behaviour>>,
    received: Mutex<HashMap<String, Vec<Received>>>,
    /// `(path, webhook-id)` pairs seen, for [`Behaviour::FailFirstPerEvent`].
    seen: Mutex<std::collections::HashSet<(String, String)>>,
}

/// The receiver: an actix server on an ephemeral loopback port in its own thread.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver that answers 200 on every path until told otherwise.
    pub fn start() -> Self {
        let state = Arc::new(State::default());
        let shared = web::Data::from(Arc::clone(&state));
        let (base, stop, thread) = serve(move |app| _ = app.app_data(shared.clone()).default_service(web::to(answer)));
        Self { base, state, stop: Some(stop), thread: Some(thread) }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sets how `path` answers.
    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.state.behaviours.lock().unwrap().insert(path.to_string(), behaviour);
    }

    /// Every request received on `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state.received.lock().unwrap().get(path).cloned().unwrap_or_default()
    }

    /// How many requests `path` received so far (without copying them).
    pub fn count(&self, path: &str) -> usize {
        self.state.received.lock().unwrap().get(path).map_or(0, Vec::len)
    }

    /// Waits (up to `deadline`) until `path` got at least `n` requests; returns them.
    pub fn wait_for(&self, path: &str, n: usize, deadline: Duration) -> Vec<Received> {
        let got = eventually(deadline, || self.received(path).len() >= n);
        let received = self.received(path);
        assert!(got, "expected {n} requests on {path} within {deadline:?}, got {}", received.len());
        received
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_string();
    let headers =
        req.headers().iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let webhook_id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (count, seen_before) = {
        let mut received = state.received.lock().unwrap();
        let list = received.entry(path.clone()).or_default();
        let seen_before = !state.seen.lock().unwrap().insert((path.clone(), webhook_id.clone()));
        list.push(Received {
            method: req.method().to_string(),
            query: req.query_string().to_string(),
            headers,
            body: body.to_vec(),
            at: Instant::now(),
        });
        (list.len(), seen_before)
    };
    let behaviour = state.behaviours.lock().unwrap().get(&path).cloned().unwrap_or(Behaviour::Ok);
    match behaviour {
        Behaviour::Ok => HttpResponse::Ok().json(serde_json::json!({"received": true})),
        Behaviour::Status(code) => HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
            .body(format!("answered {code} on purpose")),
        Behaviour::FailFirst(n) if count <= n => HttpResponse::InternalServerError().body("failing on purpose"),
        Behaviour::FailFirst(_) => HttpResponse::Ok().json(serde_json::json!({"received": true})),
        Behaviour::FailFirstPerEvent if !seen_before => HttpResponse::InternalServerError().body("first try fails"),
        Behaviour::FailFirstPerEvent => HttpResponse::Ok().finish(),
        Behaviour::RetryAfterOnce(code, value) if count == 1 => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .insert_header(("retry-after", value))
                .body("come back later")
        }
        Behaviour::RetryAfterOnce(..) => HttpResponse::Ok().finish(),
        Behaviour::Redirect => HttpResponse::Found().insert_header(("location", "/elsewhere")).finish(),
        Behaviour::Delay(d) => {
            actix_web::rt::time::sleep(d).await;
            HttpResponse::Ok().json(serde_json::json!({"received": true, "after_ms": d.as_millis() as u64}))
        }
    }
}

/// Serves the routes `routes` sets up with actix on an ephemeral loopback port, in a thread
/// of its own, until the sender is used or dropped. Returns `http://127.0.0.1:PORT`, the
/// sender and the thread (test servers: receivers, a token server).
pub fn serve(
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> (String, tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || App::new().configure(routes.clone()))
                .workers(2)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
            let handle = server.handle();
            actix_web::rt::spawn(async move {
                let _ = stopped.await;
                handle.stop(false).await;
            });
            let _ = server.await;
        });
    });
    (base, stop, thread)
}
