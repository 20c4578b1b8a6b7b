//! Endpoint health: `degraded` while attempts fail, disabled automatically after
//! `delivery.disable_after` of failures or at once on `410 Gone`, with the reason on the
//! endpoint; `Retry-After` on 429/503 is a minimum delay for the retry.

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{Req, TestServer, eventually};

fn endpoint(server: &TestServer, id: &str) -> serde_json::Value {
    let resp = server.get(&format!("/v1/webhook_endpoints/{id}"));
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body
}

#[test]
fn an_endpoint_failing_for_disable_after_is_disabled_with_the_reason_and_recovers_when_enabled() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| {
        c.delivery.disable_after = Duration::from_millis(1500);
        c.delivery.retry_schedule = vec![Duration::from_millis(300); 20];
    });
    let created = server.create_endpoint(&receiver.url("/down"));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["health"], "healthy");
    assert_eq!(created["disabled_reason"], json!(null));
    let event = server.publish("verification_session.created", json!({"id": "vks_1"}));

    receiver.wait_for("/down", 1, Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(5), || endpoint(&server, &id)["health"] == "degraded"));
    let degraded = endpoint(&server, &id);
    assert_eq!(degraded["status"], "enabled", "one failure only degrades: {degraded}");
    assert!(degraded["failing_since"].as_i64().is_some(), "{degraded}");

    let disabled = eventually(Duration::from_secs(15), || endpoint(&server, &id)["status"] == "disabled");
    assert!(disabled, "disabled after failing for 1.5 s: {}", endpoint(&server, &id));
    let record = endpoint(&server, &id);
    let reason = record["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("every attempt failed for "), "{reason}");
    assert!(receiver.received("/down").len() >= 5, "failing for 1.5 s at 0.3 s apart is several attempts");
    let metrics = Req::new("GET", format!("{}/metrics", server.base)).send().text;
    assert!(metrics.lines().any(|l| l == "stile_endpoints{state=\"disabled\"} 1"), "{metrics}");
    // The delivery is not over: its retry waits for the endpoint.
    let event_id = event["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/events/{event_id}")).body["pending_webhooks"], 1);
    assert_eq!(server.deliveries(&id)[0]["status"], "pending");

    // Enabled again, it starts over as healthy and the waiting retry goes.
    receiver.set("/down", Behaviour::Ok);
    let enabled = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"status": "enabled"}));
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.body["disabled_reason"], json!(null));
    assert_eq!(enabled.body["health"], "healthy");
    server.wait_settled(event_id, Duration::from_secs(10));
    assert_eq!(server.deliveries(&id)[0]["status"], "succeeded");
    assert_eq!(endpoint(&server, &id)["health"], "healthy");
}

#[test]
fn a_410_gone_disables_the_endpoint_at_once_and_its_retry_waits() {
    let receiver = Receiver::start();
    receiver.set("/gone", Behaviour::Status(410));
    let server = TestServer::start();
    let id = server.create_endpoint(&receiver.url("/gone"))["id"].as_str().unwrap().to_string();
    server.publish("verification_session.created", json!({"id": "vks_1"}));
    assert!(eventually(Duration::from_secs(10), || endpoint(&server, &id)["status"] == "disabled"));
    assert_eq!(endpoint(&server, &id)["disabled_reason"], "the endpoint answered 410 Gone");
    // With retries 20 ms apart, a second request would come at once if it were sent.
    assert!(!eventually(Duration::from_millis(500), || receiver.received("/gone").len() > 1));
    let attempts = server.deliveries(&id);
    assert_eq!(attempts[1]["response_status"], 410);
    assert_eq!(attempts[0]["status"], "pending", "the retry is parked: {attempts:?}");
    // New events are not sent to it either.
    server.publish("verification_session.created", json!({"id": "vks_2"}));
    assert_eq!(server.deliveries(&id).len(), 2);
}

#[test]
fn retry_after_on_503_and_429_is_a_minimum_delay_for_the_retry() {
    let receiver = Receiver::start();
    receiver.set("/busy", Behaviour::RetryAfterOnce(503, "2"));
    let in_the_past = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(60));
    receiver.set("/limited", Behaviour::RetryAfterOnce(429, Box::leak(in_the_past.into_boxed_str())));
    let server = TestServer::start();
    server.create_endpoint(&receiver.url("/busy"));
    server.create_endpoint(&receiver.url("/limited"));
    server.publish("verification_session.created", json!({"id": "vks_1"}));

    let busy = receiver.wait_for("/busy", 2, Duration::from_secs(15));
    let waited = busy[1].at - busy[0].at;
    assert!(waited >= Duration::from_millis(1900), "Retry-After: 2 was honoured, the retry came after {waited:?}");
    // A date already past asks for no delay: the 20 ms schedule applies.
    let limited = receiver.wait_for("/limited", 2, Duration::from_secs(10));
    let waited = limited[1].at - limited[0].at;
    assert!(waited < Duration::from_millis(1500), "a past Retry-After date adds nothing, waited {waited:?}");
}
