//! Verification sessions: the resource, its life cycle, and the events it emits.

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::Receiver;
use crate::common::{LIVE_KEY, TestServer};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_session_driven_through_its_life_emits_each_event_with_the_session_as_data() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    server.create_endpoint(&receiver.url("/hooks"));
    let created = server.post(
        "/v1/verification_sessions",
        json!({"type": "identity", "client_reference_id": "user_123", "metadata": {"plan": "pro"}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let session = created.body.clone();
    let id = session["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("vks_"));
    assert_eq!(session["object"], "verification_session");
    assert_eq!(session["status"], "requires_input");
    assert_eq!(session["type"], "identity");
    assert_eq!(session["client_reference_id"], "user_123");
    assert_eq!(session["livemode"], false);
    assert_eq!(session["completed_at"], serde_json::Value::Null);
    let lifetime = session["expires_at"].as_i64().unwrap() - session["created"].as_i64().unwrap();
    assert_eq!(lifetime, 24 * 3600, "expires_after defaults to 24 h");

    let mut expected = vec![("verification_session.created".to_string(), session.clone())];
    for (action, status) in [
        ("process", "processing"),
        ("require_input", "requires_input"),
        ("process", "processing"),
        ("verify", "verified"),
    ] {
        let moved = server.post(&format!("/v1/test_helpers/verification_sessions/{id}/{action}"), json!({}));
        assert_eq!(moved.status, 200, "{action}: {}", moved.text);
        assert_eq!(moved.body["status"], status);
        expected.push((format!("verification_session.{status}"), moved.body.clone()));
    }
    let verified = &expected.last().unwrap().1;
    assert!(verified["completed_at"].as_i64().is_some());
    assert_eq!(server.get(&format!("/v1/verification_sessions/{id}")).body, *verified);

    let got = receiver.wait_for("/hooks", expected.len(), WAIT);
    let mut delivered: Vec<(String, serde_json::Value)> =
        got.iter().map(|r| (r.json()["type"].as_str().unwrap().to_string(), r.json()["data"].clone())).collect();
    delivered.sort_by_key(|(_, data)| data["status"].as_str().unwrap_or("").to_string());
    for (event_type, data) in &expected {
        assert!(delivered.iter().any(|(t, d)| t == event_type && d == data), "{event_type} with {data} delivered");
    }
    let events = server.get(&format!("/v1/events?session_id={id}&limit=100"));
    let types: Vec<&str> =
        events.body["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "verification_session.verified",
            "verification_session.processing",
            "verification_session.requires_input",
            "verification_session.processing",
            "verification_session.created"
        ]
    );
}

#[test]
fn illegal_moves_are_400s_that_name_the_current_status_and_change_nothing() {
    let server = TestServer::start();
    let id =
        server.post("/v1/verification_sessions", json!({"type": "document"})).body["id"].as_str().unwrap().to_string();
    let helper =
        |action: &str| server.post(&format!("/v1/test_helpers/verification_sessions/{id}/{action}"), json!({}));
    let error = helper("require_input").assert_error(400, "invalid_request_error", "invalid_state").clone();
    assert!(error["message"].as_str().unwrap().contains("requires_input"));
    assert_eq!(helper("fail").status, 200);
    for action in ["process", "verify", "fail", "expire"] {
        let error = helper(action).assert_error(400, "invalid_request_error", "invalid_state").clone();
        assert!(error["message"].as_str().unwrap().contains("`failed`"), "{error}");
    }
    let cancel = server.post(&format!("/v1/verification_sessions/{id}/cancel"), json!({}));
    cancel.assert_error(400, "invalid_request_error", "invalid_state");
    assert_eq!(server.get(&format!("/v1/verification_sessions/{id}")).body["status"], "failed");
    let events = server.get(&format!("/v1/events?session_id={id}"));
    assert_eq!(events.body["data"].as_array().unwrap().len(), 2, "created and failed only");
    helper("dance").assert_error(404, "invalid_request_error", "route_not_found");
}

#[test]
fn cancel_works_in_both_modes_but_helpers_only_in_test_mode() {
    let server = TestServer::start();
    let live = |method: &str, path: &str| server.req(method, path).key(LIVE_KEY);
    let created = live("POST", "/v1/verification_sessions").json(&json!({"type": "identity"})).send();
    assert_eq!(created.body["livemode"], true);
    let id = created.body["id"].as_str().unwrap();
    let helper = live("POST", &format!("/v1/test_helpers/verification_sessions/{id}/verify")).json(&json!({})).send();
    helper.assert_error(400, "invalid_request_error", "test_mode_only");
    server.get(&format!("/v1/verification_sessions/{id}")).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    let cancelled = live("POST", &format!("/v1/verification_sessions/{id}/cancel")).json(&json!({})).send();
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.text);
    let list = live("GET", "/v1/verification_sessions").send();
    assert_eq!(list.body["data"][0]["id"], id);
    assert_eq!(server.get("/v1/verification_sessions").body["data"].as_array().unwrap().len(), 0);
}

#[test]
fn session_parameters_are_checked() {
    let server = TestServer::start();
    let cases = [
        (json!({}), "parameter_missing", "type"),
        (json!({"type": "passport"}), "parameter_invalid", "type"),
        (
            json!({"type": "identity", "client_reference_id": "x".repeat(256)}),
            "parameter_invalid",
            "client_reference_id",
        ),
        (json!({"type": "identity", "metadata": {"k": 1}}), "parameter_invalid", "metadata[k]"),
        (json!({"type": "identity", "status": "verified"}), "parameter_unknown", "status"),
    ];
    for (body, code, param) in cases {
        let resp = server.post("/v1/verification_sessions", body.clone());
        assert_eq!(resp.assert_error(400, "invalid_request_error", code)["param"], param, "{body}");
    }
    assert_eq!(server.get("/v1/events").body["data"].as_array().unwrap().len(), 0, "no event for refused sessions");
}

#[test]
fn sessions_expire_by_themselves_with_their_event_even_across_a_restart() {
    let server = TestServer::start_with(|c| c.verification_sessions.expires_after = Duration::from_millis(1500));
    let receiver = Receiver::start();
    server.create_endpoint_for(&receiver.url("/hooks"), &["verification_session.expired"]);
    let open =
        server.post("/v1/verification_sessions", json!({"type": "identity"})).body["id"].as_str().unwrap().to_string();
    let done =
        server.post("/v1/verification_sessions", json!({"type": "identity"})).body["id"].as_str().unwrap().to_string();
    assert_eq!(server.post(&format!("/v1/test_helpers/verification_sessions/{done}/verify"), json!({})).status, 200);
    // Restart before the deadline: the expiry is durable.
    let server = server.restart();
    let got = receiver.wait_for("/hooks", 1, WAIT);
    assert_eq!(got[0].json()["type"], "verification_session.expired");
    assert_eq!(got[0].json()["data"]["id"], open);
    assert_eq!(got[0].json()["data"]["status"], "expired");
    assert_eq!(server.get(&format!("/v1/verification_sessions/{open}")).body["status"], "expired");
    // Both sessions came due together; the expirer handles due entries in one ordered
    // pass, so any event for the finished one would be queued by now.
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/hooks").len(), 1, "a finished session does not expire");
    assert_eq!(server.get(&format!("/v1/verification_sessions/{done}")).body["status"], "verified");
}

#[test]
fn the_demo_clock_compresses_retries_and_session_lifetimes() {
    let server = TestServer::start_with(|c| {
        c.delivery.time_scale = 0.001;
        c.delivery.retry_schedule = vec![Duration::from_secs(300), Duration::from_secs(1800)];
        c.verification_sessions.expires_after = Duration::from_secs(600);
    });
    let receiver = Receiver::start();
    receiver.set("/down", crate::common::receiver::Behaviour::Status(500));
    let endpoint = server.create_endpoint_for(&receiver.url("/down"), &["verification_session.created"]);
    let started = std::time::Instant::now();
    let session = server.post("/v1/verification_sessions", json!({"type": "identity"}));
    let id = session.body["id"].as_str().unwrap().to_string();
    let lifetime = session.body["expires_at"].as_i64().unwrap() - session.body["created"].as_i64().unwrap();
    assert!(lifetime <= 1, "10 minutes at 0.001 is 0.6 s: {lifetime}");
    // 5m and 30m become 0.3 s and 1.8 s: the whole retry-then-fail life in about 2 s.
    let got = receiver.wait_for("/down", 3, WAIT);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let gap = got[2].at.duration_since(got[1].at);
    assert!(gap >= Duration::from_millis(1700) && gap < Duration::from_millis(3000), "second retry after {gap:?}");
    let attempts = server.deliveries(endpoint["id"].as_str().unwrap());
    assert!(
        crate::common::eventually(WAIT, || server.deliveries(endpoint["id"].as_str().unwrap())[0]["status"]
            == "failed"),
        "{attempts:?}"
    );
    assert!(crate::common::eventually(WAIT, || server.get(&format!("/v1/verification_sessions/{id}")).body["status"]
        == "expired"));
}

#[test]
fn a_session_expires_when_the_servers_clock_passes_its_expiry() {
    // A manual clock: the default 24 h lifetime passes in one step, no waiting.
    let clock = stile::clock::Clock::manual(stile::clock::unix_now_ms());
    let server = TestServer::start_with_clock(clock.clone(), |_| {});
    let receiver = Receiver::start();
    server.create_endpoint_for(&receiver.url("/hooks"), &["verification_session.expired"]);
    let created = server.post("/v1/verification_sessions", json!({"type": "identity"}));
    let id = created.body["id"].as_str().unwrap().to_string();
    let expires_at = created.body["expires_at"].as_i64().unwrap();
    assert_eq!(expires_at - created.body["created"].as_i64().unwrap(), 24 * 3600);

    clock.advance(Duration::from_secs(23 * 3600));
    // The expirer looked at the new time (the advance woke it) and left the session open:
    // a session created now expires after it, so its expiry is the first one due.
    let later = server.post("/v1/verification_sessions", json!({"type": "identity"}));
    assert_eq!(later.body["created"].as_i64().unwrap(), clock.now(), "the API reads the same clock");
    assert_eq!(server.get(&format!("/v1/verification_sessions/{id}")).body["status"], "requires_input");

    clock.advance(Duration::from_secs(3600));
    let got = receiver.wait_for("/hooks", 1, WAIT);
    assert_eq!(got[0].json()["data"]["id"], id);
    assert_eq!(got[0].json()["created"], clock.now(), "the event is stamped with the server's clock");
    assert_eq!(server.get(&format!("/v1/verification_sessions/{id}")).body["status"], "expired");
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/hooks").len(), 1, "the later session has 23 h left");
}
