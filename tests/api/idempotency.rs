//! `Idempotency-Key` on POST requests.

use serde_json::json;

use crate::common::{LIVE_KEY, TestServer};

const PATH: &str = "/v1/webhook_endpoints";

fn endpoint_body(url: &str) -> serde_json::Value {
    json!({"url": url, "enabled_events": ["*"]})
}

#[test]
fn a_retry_with_the_same_key_and_body_replays_the_first_response() {
    let server = TestServer::start();
    let send = || {
        server
            .req("POST", PATH)
            .header("idempotency-key", "create-1")
            .json(&endpoint_body("https://example.com/a"))
            .send()
    };
    let first = send();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = send();
    assert_eq!(second.status, 200);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body, "same id, same secret");
    assert_eq!(server.get(PATH).body["data"].as_array().unwrap().len(), 1, "created once");
}

#[test]
fn the_same_key_with_a_different_body_is_an_idempotency_error() {
    let server = TestServer::start();
    let first =
        server.req("POST", PATH).header("idempotency-key", "k").json(&endpoint_body("https://example.com/a")).send();
    assert_eq!(first.status, 200);
    let other =
        server.req("POST", PATH).header("idempotency-key", "k").json(&endpoint_body("https://example.com/b")).send();
    other.assert_error(400, "idempotency_error", "idempotency_key_reused");
    // Same body on a different path is a different request too.
    let id = first.body["id"].as_str().unwrap();
    let update = server
        .req("POST", &format!("{PATH}/{id}"))
        .header("idempotency-key", "k")
        .json(&endpoint_body("https://example.com/a"))
        .send();
    update.assert_error(400, "idempotency_error", "idempotency_key_reused");
    assert_eq!(server.get(PATH).body["data"].as_array().unwrap().len(), 1);
}

#[test]
fn a_rejected_request_does_not_use_up_its_key() {
    let server = TestServer::start();
    let bad = server
        .req("POST", PATH)
        .header("idempotency-key", "fix-me")
        .json(&json!({"url": "https://example.com"}))
        .send();
    bad.assert_error(400, "invalid_request_error", "parameter_missing");
    let fixed =
        server.req("POST", PATH).header("idempotency-key", "fix-me").json(&endpoint_body("https://example.com")).send();
    assert_eq!(fixed.status, 200, "{}", fixed.text);
}

#[test]
fn keys_are_scoped_to_the_mode() {
    let server = TestServer::start();
    let test = server
        .req("POST", PATH)
        .header("idempotency-key", "shared")
        .json(&endpoint_body("https://example.com/a"))
        .send();
    let live = server
        .req("POST", PATH)
        .key(LIVE_KEY)
        .header("idempotency-key", "shared")
        .json(&endpoint_body("https://example.com/a"))
        .send();
    assert_eq!((test.status, live.status), (200, 200));
    assert_ne!(test.body["id"], live.body["id"]);
    assert_eq!(live.body["livemode"], true);
}

#[test]
fn replays_survive_a_restart() {
    let server = TestServer::start();
    let body = endpoint_body("https://example.com/a");
    let first = server.req("POST", PATH).header("idempotency-key", "durable").json(&body).send();
    let server = server.restart();
    let again = server.req("POST", PATH).header("idempotency-key", "durable").json(&body).send();
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

#[test]
fn an_oversized_key_is_refused() {
    let server = TestServer::start();
    let resp = server
        .req("POST", PATH)
        .header("idempotency-key", &"k".repeat(256))
        .json(&endpoint_body("https://example.com/a"))
        .send();
    resp.assert_error(400, "invalid_request_error", "idempotency_key_invalid");
}
