//! The example receivers in `examples/receivers/`, run as the README and docs/receiving.md run them, against the
//! `stile` binary: each verifies a real delivery, handles a resent event once, and rejects
//! a tampered body, a stale timestamp and a missing signature (400, nothing handled). The
//! curl recipe verifies a delivery saved to a file and refuses it once a byte changes.
//!
//! Each needs its language's toolchain (Node.js, Python 3, Go, openssl): without it the
//! test prints a loud SKIPPED line and passes, except under `CI=true`, where it fails
//! (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::process::{OutputProcess, ServerProcess, Stream};
use crate::common::receiver::Receiver;
use crate::common::{Req, eventually};

/// How long a delivery may take to reach a receiver and be printed (a `go run` builds
/// first, but that is before the receiver says it listens).
const ARRIVES_WITHIN: Duration = Duration::from_secs(30);

/// The folder of the example receivers.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/receivers")
}

/// Whether `program` runs (`version_arg` prints its version); if not, SKIPPED, or a
/// failure under CI.
fn available(program: &str, version_arg: &str) -> bool {
    let runs = Command::new(program).arg(version_arg).output().is_ok_and(|out| out.status.success());
    if !runs {
        assert!(std::env::var("CI").is_err(), "CI must install {program} (.ci/run)");
        eprintln!("SKIPPED: {program} is not installed, so its example receiver is not tested");
    }
    runs
}

/// A `stile` server on a fresh data directory, with the test key its first start printed.
struct Stile {
    server: ServerProcess,
    key: String,
    _dir: tempfile::TempDir,
}

impl Stile {
    fn start() -> Stile {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--listen", "127.0.0.1:0", "--data-dir", "data"];
        let server = ServerProcess::start(dir.path(), &args, &[]).expect("stile starts");
        let key = server.first_key().expect("a first start prints a key");
        Stile { server, key, _dir: dir }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let resp = Req::new("POST", format!("{}{path}", self.server.base)).key(&self.key).json(&body).send();
        assert_eq!(resp.status, 200, "POST {path}: {}", resp.text);
        resp.body
    }

    fn get(&self, path: &str) -> Value {
        let resp = Req::new("GET", format!("{}{path}", self.server.base)).key(&self.key).send();
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.text);
        resp.body
    }

    /// An endpoint for every event type at `url`; its id and secret.
    fn endpoint(&self, url: &str) -> (String, String) {
        let endpoint = self.post("/v1/webhook_endpoints", json!({"url": url, "enabled_events": ["*"]}));
        (endpoint["id"].as_str().unwrap().to_string(), endpoint["secret"].as_str().unwrap().to_string())
    }

    /// Publishes a `verification_session.verified` event; its id.
    fn publish(&self) -> String {
        let data = json!({"id": "vs_receivers", "object": "verification_session", "status": "verified"});
        let event = self.post("/v1/events", json!({"type": "verification_session.verified", "data": data}));
        event["id"].as_str().unwrap().to_string()
    }
}

/// A `stile-signature` header for `body` at `t`, signed with `secret`, computed here from
/// the specification.
fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Runs the receiver `command` (with `STILE_WEBHOOK_SECRET` and `PORT` set here) through
/// a delivery, a resend and three forged requests.
fn check_receiver(mut command: Command) {
    let stile = Stile::start();
    // The endpoint is made before the receiver (which needs its secret) and pointed at it
    // once it listens; no event exists before then, so nothing goes to the placeholder.
    let (endpoint, secret) = stile.endpoint("http://127.0.0.1:9/webhooks");
    command.env("STILE_WEBHOOK_SECRET", &secret).env("PORT", "0");
    let mut receiver = OutputProcess::spawn(command);
    let listening = receiver.wait_line(Stream::Out, "listening on http://127.0.0.1:", ARRIVES_WITHIN);
    let url = listening.trim().strip_prefix("listening on ").unwrap().to_string();
    stile.post(&format!("/v1/webhook_endpoints/{endpoint}"), json!({"url": url}));

    // A real delivery is verified and handled.
    let event = stile.publish();
    receiver.wait_line(Stream::Out, &format!("verified {event} verification_session.verified"), ARRIVES_WITHIN);
    // A resend carries the same event id: recognised, answered 2xx, not handled again.
    stile.post(&format!("/v1/events/{event}/resend"), json!({}));
    receiver.wait_line(Stream::Out, &format!("duplicate {event}"), ARRIVES_WITHIN);
    // stile records each answer after the receiver has it: wait for both records.
    let mut attempts = Value::Null;
    let recorded = eventually(ARRIVES_WITHIN, || {
        attempts = stile.get(&format!("/v1/webhook_endpoints/{endpoint}/deliveries"));
        attempts["data"].as_array().unwrap().iter().filter(|a| a["status"] != "pending").count() == 2
    });
    assert!(recorded, "both attempts are recorded: {attempts}");
    for attempt in attempts["data"].as_array().unwrap() {
        assert_eq!((attempt["status"].as_str(), attempt["response_status"].as_u64()), (Some("succeeded"), Some(200)));
    }

    // Forgeries: each is refused with a 400 and handles nothing.
    let mut forged = |body: &[u8], header: Option<String>| {
        let mut req = Req::new("POST", url.clone()).no_key();
        if let Some(header) = header {
            req = req.header("stile-signature", &header);
        }
        let resp = req.raw(body.to_vec(), "application/json").send();
        assert_eq!(resp.status, 400, "a forged delivery is refused: {}", resp.text);
        receiver.wait_line(Stream::Out, "rejected", ARRIVES_WITHIN);
    };
    let genuine = json!({"id": "evt_forged", "object": "event", "type": "verification_session.verified"});
    let genuine = serde_json::to_vec(&genuine).unwrap();
    let mut tampered = genuine.clone();
    *tampered.iter_mut().rev().find(|b| b.is_ascii_lowercase()).unwrap() ^= 0x20;
    forged(&tampered, Some(signature(&secret, now(), &genuine)));
    forged(&genuine, Some(signature(&secret, now() - 600, &genuine)));
    forged(&genuine, Some(signature("whsec_not_the_endpoints_secret", now(), &genuine)));
    forged(&genuine, None);
    // The same body, signed now with the right secret, is accepted: the refusals above
    // were about what was wrong with each, not about the body.
    let resp = Req::new("POST", url.clone())
        .no_key()
        .header("stile-signature", &signature(&secret, now(), &genuine))
        .raw(genuine, "application/json")
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text);
    receiver.wait_line(Stream::Out, "verified evt_forged verification_session.verified", ARRIVES_WITHIN);
}

#[test]
fn the_node_receiver_verifies_deliveries_and_refuses_forgeries() {
    if !available("node", "--version") {
        return;
    }
    let mut command = Command::new("node");
    command.arg(examples().join("node/receiver.mjs"));
    check_receiver(command);
}

#[test]
fn the_python_receiver_verifies_deliveries_and_refuses_forgeries() {
    if !available("python3", "--version") {
        return;
    }
    let mut command = Command::new("python3");
    command.arg(examples().join("python/receiver.py"));
    check_receiver(command);
}

#[test]
fn the_go_receiver_verifies_deliveries_and_refuses_forgeries() {
    if !available("go", "version") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let binary = build.path().join("receiver");
    // Built first, so the receiver under test is the program, not `go run` around it.
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(examples().join("go"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", build.path().join("cache"))
        .output()
        .expect("go runs");
    assert!(built.status.success(), "go build: {}", String::from_utf8_lossy(&built.stderr));
    check_receiver(Command::new(binary));
}

#[test]
fn the_curl_recipe_verifies_a_saved_delivery_and_refuses_a_changed_one() {
    if !available("openssl", "version") {
        return;
    }
    let stile = Stile::start();
    let receiver = Receiver::start();
    let (_, secret) = stile.endpoint(&receiver.url("/hook"));
    stile.publish();
    let delivery = receiver.wait_for("/hook", 1, ARRIVES_WITHIN).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    let verify = |secret: &str, header: &str| {
        Command::new("sh")
            .arg(examples().join("curl/verify.sh"))
            .args([secret, header])
            .arg(&body)
            .output()
            .expect("sh runs")
    };
    let header = delivery.header("stile-signature").to_string();

    std::fs::write(&body, &delivery.body).unwrap();
    let out = verify(&secret, &header);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verified");

    let refused = |out: std::process::Output, why: &str| {
        assert_eq!(out.status.code(), Some(1), "{why}: {}", String::from_utf8_lossy(&out.stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("rejected:"), "{why}: {stderr}");
    };
    refused(verify("whsec_not_the_endpoints_secret", &header), "another secret");
    let stale = signature(&secret, now() - 600, &delivery.body);
    refused(verify(&secret, &stale), "a stale timestamp");
    let mut changed = delivery.body.clone();
    let last = changed.len() - 2;
    changed[last] ^= 0x01;
    std::fs::write(&body, &changed).unwrap();
    refused(verify(&secret, &header), "a changed body");
}
