//! W3C trace context end to end: a publish's `traceparent` and `tracestate` reach every
//! attempt of its event, each attempt a span of its own in the caller's trace; without a
//! valid one, each event starts a trace. Seen by a real receiver, on the backend the suite
//! runs on.

use std::time::Duration;

use serde_json::json;

use crate::common::TestServer;
use crate::common::receiver::{Behaviour, Receiver};

const WAIT: Duration = Duration::from_secs(20);

/// The caller's trace: its trace id and the span that publishes.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A `traceparent`'s four fields; panics if it is not W3C's version-00 shape.
fn fields(traceparent: &str) -> [String; 4] {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [2, 32, 16, 2], "{traceparent}");
    assert!(traceparent.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(parts[0], "00");
    [0, 1, 2, 3].map(|i| parts[i].to_string())
}

#[test]
fn a_publishs_trace_reaches_every_attempt_each_with_a_span_of_its_own() {
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(200)]);
    let receiver = Receiver::start();
    receiver.set("/hook", Behaviour::FailFirst(1));
    let endpoint = server.create_endpoint(&receiver.url("/hook"));
    let endpoint = endpoint["id"].as_str().unwrap().to_string();
    let published = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("tracestate", "rojo=00f067aa0ba902b7")
        .json(&json!({"type": "verification_session.created", "data": {"id": "vks_1"}}))
        .send();
    assert_eq!(published.status, 200, "{}", published.text);

    // The first attempt fails and its retry succeeds: two requests, one trace.
    let received = receiver.wait_for("/hook", 2, WAIT);
    let spans: Vec<String> = received
        .iter()
        .map(|r| {
            let [_, trace, span, flags] = fields(r.header("traceparent"));
            assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"), "the caller's trace, sampled");
            assert_eq!(r.header("tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
            span
        })
        .collect();
    assert_ne!(spans[0], spans[1], "each attempt is a span of its own");
    assert!(spans.iter().all(|s| s != "00f067aa0ba902b7" && s != "0000000000000000"));

    // The attempts show what was sent, once both are recorded.
    let mut attempts = Vec::new();
    let recorded = crate::common::eventually(WAIT, || {
        attempts = server.deliveries(&endpoint);
        attempts.len() == 2 && attempts.iter().all(|a| a["status"] != "pending")
    });
    assert!(recorded, "{attempts:#?}");
    for attempt in &attempts {
        let detail =
            server.get(&format!("/v1/webhook_endpoints/{endpoint}/deliveries/{}", attempt["id"].as_str().unwrap()));
        let sent = detail.body["request"]["headers"]["traceparent"].as_str().unwrap_or_default().to_string();
        assert!(received.iter().any(|r| r.header("traceparent") == sent), "{}", detail.body);
    }

    // A test ping is traced too, in a trace of its own.
    let ping = server.post(&format!("/v1/webhook_endpoints/{endpoint}/test"), json!({}));
    assert_eq!(ping.status, 200, "{}", ping.text);
    let received = receiver.wait_for("/hook", 3, WAIT);
    let [_, trace, _, _] = fields(received[2].header("traceparent"));
    assert_ne!(trace, TRACE_ID);
}

#[test]
fn without_a_valid_traceparent_each_event_starts_a_trace_and_the_publish_never_fails() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    server.create_endpoint(&receiver.url("/hook"));
    server.publish("verification_session.created", json!({"id": "vks_1"}));
    server.publish("verification_session.created", json!({"id": "vks_2"}));
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "not a traceparent",
    ] {
        let published = server
            .req("POST", "/v1/events")
            .header("traceparent", bad)
            .header("tracestate", "congo=t61rcWkgMzE")
            .json(&json!({"type": "verification_session.created", "data": {"id": "vks_bad"}}))
            .send();
        assert_eq!(published.status, 200, "{bad}: {}", published.text);
    }
    // Two `traceparent` fields are invalid too.
    let twice = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .header("traceparent", CALLER)
        .json(&json!({"type": "verification_session.created", "data": {}}))
        .send();
    assert_eq!(twice.status, 200, "{}", twice.text);
    let received = receiver.wait_for("/hook", 7, WAIT);
    let mut traces: Vec<String> = received.iter().map(|r| fields(r.header("traceparent"))[1].clone()).collect();
    assert!(received.iter().all(|r| r.header("tracestate").is_empty()), "a bad traceparent drops the tracestate");
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 7, "a new trace per event: {traces:?}");
    assert!(!traces.contains(&TRACE_ID.to_string()));
}
