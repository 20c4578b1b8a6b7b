//! Crash and shutdown safety of the real binary: kill -9 and SIGTERM with deliveries
//! scheduled or in flight.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::process::ServerProcess;
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, TEST_KEY, eventually};

const WAIT: Duration = Duration::from_secs(15);

fn start(dir: &Path, retry_schedule: &str) -> ServerProcess {
    let env = [
        ("STILE_AUTH_KEYS", TEST_KEY),
        ("STILE_DELIVERY_RETRY_SCHEDULE", retry_schedule),
        ("STILE_DELIVERY_TIMEOUT", "10s"),
    ];
    ServerProcess::start(dir, &["--listen", "127.0.0.1:0", "--data-dir", "data"], &env).expect("server starts")
}

fn call(server: &ServerProcess, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = Req::new(method, format!("{}{path}", server.base)).key(TEST_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send();
    assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text);
    resp.body
}

fn attempts(server: &ServerProcess, endpoint: &str) -> Vec<Value> {
    call(server, "GET", &format!("/v1/webhook_endpoints/{endpoint}/deliveries?limit=100"), None)["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_retry_scheduled_before_kill_9_is_made_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/flaky", Behaviour::FailFirst(1));
    let server = start(dir.path(), "2s");
    let endpoint = call(
        &server,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/flaky"), "enabled_events": ["*"]})),
    );
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    let event = call(
        &server,
        "POST",
        "/v1/events",
        Some(json!({"type": "verification_session.verified", "data": {"id": "vks_1"}})),
    );
    receiver.wait_for("/flaky", 1, WAIT);
    assert!(eventually(WAIT, || attempts(&server, &endpoint_id)
        .first()
        .is_some_and(|a| a["status"] == "pending" && a["attempt"] == 2)));
    server.kill_hard();

    let server = start(dir.path(), "2s");
    let got = receiver.wait_for("/flaky", 2, WAIT);
    assert_eq!(got[0].body, got[1].body);
    let event_path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    assert!(eventually(WAIT, || call(&server, "GET", &event_path, None)["pending_webhooks"] == 0));
    let statuses: Vec<String> =
        attempts(&server, &endpoint_id).iter().map(|a| a["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["succeeded", "failed"], "the first attempt failed and its retry was made");
}

#[test]
fn an_attempt_in_flight_at_kill_9_is_made_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Delay(Duration::from_secs(3)));
    let server = start(dir.path(), "1s");
    let endpoint = call(
        &server,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/slow"), "enabled_events": ["*"]})),
    );
    let event = call(
        &server,
        "POST",
        "/v1/events",
        Some(json!({"type": "verification_session.verified", "data": {"id": "vks_2"}})),
    );
    receiver.wait_for("/slow", 1, WAIT);
    server.kill_hard();
    receiver.set("/slow", Behaviour::Ok);

    let server = start(dir.path(), "1s");
    let got = receiver.wait_for("/slow", 2, WAIT);
    assert_eq!(got[1].header("webhook-id"), event["id"].as_str().unwrap(), "the same event, at least once");
    let event_path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    assert!(eventually(WAIT, || call(&server, "GET", &event_path, None)["pending_webhooks"] == 0));
    let list = attempts(&server, endpoint["id"].as_str().unwrap());
    assert_eq!(list.len(), 1, "the interrupted attempt is the one recorded: {list:?}");
    assert_eq!(list[0]["status"], "succeeded");
}

#[test]
fn sigterm_lets_attempts_in_flight_finish_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Delay(Duration::from_millis(1500)));
    let server = start(dir.path(), "1s");
    let endpoint = call(
        &server,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": receiver.url("/slow"), "enabled_events": ["*"]})),
    );
    let events: Vec<String> = (0..5)
        .map(|n| {
            let body = json!({"type": "verification_session.verified", "data": {"id": format!("vks_{n}")}});
            call(&server, "POST", "/v1/events", Some(body))["id"].as_str().unwrap().to_string()
        })
        .collect();
    receiver.wait_for("/slow", 5, WAIT);
    let started = std::time::Instant::now();
    assert_eq!(server.terminate(), Some(0), "a clean exit");
    assert!(started.elapsed() < Duration::from_secs(10), "within the delivery timeout");

    let server = start(dir.path(), "1s");
    for id in &events {
        let event = call(&server, "GET", &format!("/v1/events/{id}"), None);
        assert_eq!(event["pending_webhooks"], 0, "recorded before exit: {event}");
    }
    let list = attempts(&server, endpoint["id"].as_str().unwrap());
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|a| a["status"] == "succeeded"), "{list:?}");
    crate::common::wait_queue_empty(&server.base, WAIT);
    let ids: HashSet<String> = receiver.received("/slow").iter().map(|r| r.header("webhook-id").to_string()).collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(receiver.received("/slow").len(), 5, "nothing sent twice");
}
