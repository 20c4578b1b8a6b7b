//! Recovery: `POST /v1/webhook_endpoints/:id/recover` resends what failed for good, and
//! `GET /v1/events?delivery_success=` finds events by delivery outcome.

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{LIVE_KEY, TestServer};

fn event_ids(server: &TestServer, query: &str) -> Vec<String> {
    let resp = server.get(&format!("/v1/events?limit=100&{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn failed_deliveries_are_found_and_recovered_once_the_endpoint_works_again() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(20)]);
    server.create_endpoint_for(&receiver.url("/up"), &["verification_session.created"]);
    let down = server.create_endpoint_for(&receiver.url("/down"), &["verification_session.processing"]);
    let down_id = down["id"].as_str().unwrap().to_string();
    let recover = |body: serde_json::Value| server.post(&format!("/v1/webhook_endpoints/{down_id}/recover"), body);

    let delivered = server.publish("verification_session.created", json!({"id": "vks_ok"}));
    let mut failed = Vec::new();
    for n in 0..3 {
        let event = server.publish("verification_session.processing", json!({ "id": format!("vks_{n}") }));
        failed.push(event["id"].as_str().unwrap().to_string());
    }
    for id in failed.iter().chain([delivered["id"].as_str().unwrap().to_string()].iter()) {
        server.wait_settled(id, Duration::from_secs(10));
    }
    assert_eq!(receiver.received("/down").len(), 6, "3 events, 2 attempts each");

    let mut not_delivered = event_ids(&server, "delivery_success=false");
    not_delivered.sort();
    let mut expected = failed.clone();
    expected.sort();
    assert_eq!(not_delivered, expected);
    assert_eq!(event_ids(&server, "delivery_success=true"), [delivered["id"].as_str().unwrap()]);
    assert_eq!(
        event_ids(&server, "delivery_success=false&type=verification_session.created"),
        Vec::<String>::new(),
        "filters combine"
    );
    server.get("/v1/events?delivery_success=maybe").assert_error(400, "invalid_request_error", "parameter_invalid");

    // A dry run counts and sends nothing; a `since` after the failures finds nothing.
    let dry = recover(json!({"since": 0, "dry_run": true}));
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.body["object"], "webhook_endpoint_recovery");
    assert_eq!((dry.body["events"].as_u64(), dry.body["dry_run"].as_bool()), (Some(3), Some(true)));
    let later = recover(json!({"since": 4_000_000_000i64}));
    assert_eq!(later.body["events"], 0);
    assert_eq!(receiver.received("/down").len(), 6);
    assert_eq!(event_ids(&server, "delivery_success=false").len(), 3);

    receiver.set("/down", Behaviour::Ok);
    let done = recover(json!({"since": 0}));
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!((done.body["events"].as_u64(), done.body["has_more"].as_bool()), (Some(3), Some(false)));
    let arrived = receiver.wait_for("/down", 9, Duration::from_secs(10));
    let mut resent: Vec<String> = arrived[6..].iter().map(|r| r.header("webhook-id").to_string()).collect();
    resent.sort();
    assert_eq!(resent, expected, "each failed event once more, same id");
    for id in &failed {
        server.wait_settled(id, Duration::from_secs(10));
    }
    assert!(event_ids(&server, "delivery_success=false").is_empty());
    assert_eq!(event_ids(&server, "delivery_success=true").len(), 4);
    // Nothing is failed any more, so a second recovery resends nothing.
    assert_eq!(recover(json!({"since": 0})).body["events"], 0);

    // Bad requests.
    recover(json!({})).assert_error(400, "invalid_request_error", "parameter_missing");
    recover(json!({"since": -1})).assert_error(400, "invalid_request_error", "parameter_invalid");
    recover(json!({"since": 253_402_300_800i64})).assert_error(400, "invalid_request_error", "parameter_invalid");
    recover(json!({"since": "yesterday"})).assert_error(400, "invalid_request_error", "parameter_invalid");
    recover(json!({"since": 0, "dry_run": "yes"})).assert_error(400, "invalid_request_error", "parameter_invalid");
    recover(json!({"since": 0, "until": 5})).assert_error(400, "invalid_request_error", "parameter_unknown");
    let foreign = server
        .req("POST", &format!("/v1/webhook_endpoints/{down_id}/recover"))
        .key(LIVE_KEY)
        .json(&json!({"since": 0}))
        .send();
    foreign.assert_error(404, "invalid_request_error", "resource_missing");
}
