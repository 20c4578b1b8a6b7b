//! Delivery: fan-out, signatures, retries, failures, endpoint actions, over real HTTP to a
//! real receiver.

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TestServer, eventually};

const VERIFIED: &str = "verification_session.verified";
const FAILED: &str = "verification_session.failed";
const WAIT: Duration = Duration::from_secs(10);

fn session(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "verification_session", "status": "verified"})
}

#[test]
fn an_event_reaches_exactly_the_subscribed_enabled_endpoints_signed_both_ways() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let a = server.create_endpoint_for(&receiver.url("/a"), &[VERIFIED]);
    let b = server.create_endpoint_for(&receiver.url("/b"), &["*"]);
    server.create_endpoint_for(&receiver.url("/c"), &[FAILED]);
    let d = server.create_endpoint_for(&receiver.url("/d"), &["*"]);
    let paused =
        server.post(&format!("/v1/webhook_endpoints/{}", d["id"].as_str().unwrap()), json!({"status": "disabled"}));
    assert_eq!(paused.status, 200);

    let event = server.publish(VERIFIED, session("vks_1"));
    assert_eq!(event["pending_webhooks"], 2, "two endpoints match: {event}");
    let event_id = event["id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_"));

    for (path, endpoint) in [("/a", &a), ("/b", &b)] {
        let got = receiver.wait_for(path, 1, WAIT);
        let request = &got[0];
        let secret = endpoint["secret"].as_str().unwrap();
        assert_eq!(request.stile_signature_valid(secret), (true, 1), "{path}: {:?}", request.headers);
        assert_eq!(request.standard_signature_valid(secret), (true, 1), "{path}: {:?}", request.headers);
        assert_eq!(request.header("webhook-id"), event_id);
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("stile/"), "{}", request.header("user-agent"));
        let body = request.json();
        assert_eq!(body["id"], event_id);
        assert_eq!(body["object"], "event");
        assert_eq!(body["type"], VERIFIED);
        assert_eq!(body["livemode"], false);
        assert_eq!(body["data"], session("vks_1"));
        assert!(body.get("pending_webhooks").is_none(), "the payload is the event as published");
        // Another endpoint's secret does not verify.
        let other = if path == "/a" { &b } else { &a };
        assert!(!request.stile_signature_valid(other["secret"].as_str().unwrap()).0);
    }
    server.wait_settled(event_id, WAIT);
    assert!(receiver.received("/c").is_empty(), "not subscribed");
    assert!(receiver.received("/d").is_empty(), "disabled");
    // Both deliveries are recorded as succeeded.
    for endpoint in [&a, &b] {
        let attempts = server.deliveries(endpoint["id"].as_str().unwrap());
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["status"], "succeeded");
        assert_eq!(attempts[0]["response_status"], 200);
        assert_eq!(attempts[0]["attempt"], 1);
        assert_eq!(attempts[0]["event_id"], event_id);
        assert_eq!(attempts[0]["event_type"], VERIFIED);
        assert!(attempts[0]["response_body"].as_str().unwrap().contains("received"));
    }
}

#[test]
fn a_failed_delivery_is_retried_with_the_same_body_then_succeeds() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    receiver.set("/flaky", Behaviour::FailFirst(2));
    let endpoint = server.create_endpoint(&receiver.url("/flaky"));
    let event = server.publish(VERIFIED, session("vks_2"));
    let event_id = event["id"].as_str().unwrap();

    let got = receiver.wait_for("/flaky", 3, WAIT);
    server.wait_settled(event_id, WAIT);
    assert!(got.windows(2).all(|w| w[0].body == w[1].body), "byte-identical body on every attempt");
    assert!(got.iter().all(|r| r.header("webhook-id") == event_id));
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(got.iter().all(|r| r.stile_signature_valid(secret).0 && r.standard_signature_valid(secret).0));

    let attempts = server.deliveries(endpoint["id"].as_str().unwrap());
    let summary: Vec<(u64, &str)> =
        attempts.iter().map(|a| (a["attempt"].as_u64().unwrap(), a["status"].as_str().unwrap())).collect();
    // Each earlier attempt is `failed` once its retry is made: nothing waits on it.
    assert_eq!(summary, [(3, "succeeded"), (2, "failed"), (1, "failed")]);
    assert_eq!(attempts[1]["response_status"], 500);
    assert!(attempts[1]["next_retry_at"].as_i64().is_some());
    assert!(attempts[1]["error"].as_str().unwrap().contains("500"));
    assert!(attempts[1]["response_body"].as_str().unwrap().contains("failing on purpose"));
    assert_eq!(attempts[0]["next_retry_at"], serde_json::Value::Null);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/flaky").len(), 3, "nothing after success");
}

#[test]
fn a_delivery_fails_for_good_after_the_last_retry() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(503));
    let endpoint = server.create_endpoint(&receiver.url("/down"));
    let event = server.publish(VERIFIED, session("vks_3"));
    let event_id = event["id"].as_str().unwrap();
    // 1 + 3 retries with the test schedule.
    receiver.wait_for("/down", 4, WAIT);
    server.wait_settled(event_id, WAIT);
    let attempts = server.deliveries(endpoint["id"].as_str().unwrap());
    let statuses: Vec<&str> = attempts.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "failed", "failed"], "each retry made, the last for good");
    assert_eq!(attempts[0]["attempt"], 4);
    assert_eq!(attempts[0]["response_status"], 503);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/down").len(), 4, "no attempt after the final failure");
    let failed =
        server.get(&format!("/v1/webhook_endpoints/{}/deliveries?status=failed", endpoint["id"].as_str().unwrap()));
    assert_eq!(failed.body["data"].as_array().unwrap().len(), 4, "every attempt failed, and nothing waits");
}

#[test]
fn timeouts_redirects_and_refused_connections_are_failures_in_plain_words() {
    let server = TestServer::start_with(|c| {
        c.delivery.timeout = Duration::from_millis(500);
        c.delivery.retry_schedule = vec![];
    });
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Delay(Duration::from_secs(3)));
    receiver.set("/moved", Behaviour::Redirect);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}/gone", closed.local_addr().unwrap());
    drop(closed);
    let slow = server.create_endpoint(&receiver.url("/slow"));
    let moved = server.create_endpoint(&receiver.url("/moved"));
    let refused = server.create_endpoint(&refused_url);
    // https:// to a server that only speaks plain HTTP: the TLS handshake fails.
    let not_tls = server.create_endpoint(&receiver.url("/tls").replace("http://", "https://"));
    let event = server.publish(VERIFIED, session("vks_4"));
    server.wait_settled(event["id"].as_str().unwrap(), WAIT);

    let only = |endpoint: &serde_json::Value| server.deliveries(endpoint["id"].as_str().unwrap())[0].clone();
    let attempt = only(&slow);
    assert_eq!(attempt["status"], "failed");
    assert_eq!(attempt["error"], "timeout after 500ms");
    assert!(attempt["duration_ms"].as_u64().unwrap() < 2_000, "{attempt}");
    let attempt = only(&moved);
    assert_eq!(attempt["status"], "failed");
    assert_eq!(attempt["response_status"], 302);
    assert!(attempt["error"].as_str().unwrap().contains("redirect"), "{attempt}");
    assert!(receiver.received("/elsewhere").is_empty(), "redirects are not followed");
    let attempt = only(&refused);
    assert_eq!(attempt["status"], "failed");
    assert_eq!(attempt["error"], "connection refused");
    assert_eq!(attempt["response_status"], serde_json::Value::Null);
    let attempt = only(&not_tls);
    assert_eq!(attempt["status"], "failed");
    assert!(attempt["error"].as_str().unwrap().starts_with("tls: "), "{attempt}");
}

#[test]
fn a_disabled_endpoint_gets_its_retries_only_once_enabled_again() {
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(300)]);
    let receiver = Receiver::start();
    receiver.set("/pausable", Behaviour::FailFirst(1));
    let endpoint = server.create_endpoint(&receiver.url("/pausable"));
    let id = endpoint["id"].as_str().unwrap();
    let event = server.publish(VERIFIED, session("vks_5"));
    receiver.wait_for("/pausable", 1, WAIT);
    assert_eq!(server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"status": "disabled"})).status, 200);
    // The retry comes due and is parked: off the queue, still pending, not sent.
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/pausable").len(), 1, "the retry waits while disabled");
    assert_eq!(server.get(&format!("/v1/events/{}", event["id"].as_str().unwrap())).body["pending_webhooks"], 1);
    // New events are not sent to it either.
    server.publish(VERIFIED, session("vks_5b"));
    assert_eq!(server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"status": "enabled"})).status, 200);
    let got = receiver.wait_for("/pausable", 2, WAIT);
    assert_eq!(got[1].json()["data"]["id"], "vks_5");
    server.wait_settled(event["id"].as_str().unwrap(), WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/pausable").len(), 2, "the event published while disabled is not sent");
}

#[test]
fn rotating_without_grace_switches_at_once_and_with_grace_signs_with_both() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint(&receiver.url("/rot"));
    let id = endpoint["id"].as_str().unwrap();
    let first = endpoint["secret"].as_str().unwrap().to_string();

    let rotated = server.post(&format!("/v1/webhook_endpoints/{id}/rotate_secret"), json!({}));
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert!(server.get(&format!("/v1/webhook_endpoints/{id}")).body.get("secret").is_none());
    server.publish(VERIFIED, session("vks_6"));
    let got = receiver.wait_for("/rot", 1, WAIT);
    assert_eq!(got[0].stile_signature_valid(&second), (true, 1));
    assert!(!got[0].stile_signature_valid(&first).0, "the old secret died at once");

    let graced = server.post(&format!("/v1/webhook_endpoints/{id}/rotate_secret"), json!({"expires_in": "1h"}));
    let third = graced.body["secret"].as_str().unwrap().to_string();
    server.publish(VERIFIED, session("vks_7"));
    let got = receiver.wait_for("/rot", 2, WAIT);
    assert_eq!(got[1].stile_signature_valid(&third), (true, 2));
    assert_eq!(got[1].stile_signature_valid(&second), (true, 2));
    assert_eq!(got[1].standard_signature_valid(&third), (true, 2));
    assert_eq!(got[1].standard_signature_valid(&second), (true, 2));

    let bad = server.post(&format!("/v1/webhook_endpoints/{id}/rotate_secret"), json!({"expires_in": "forever"}));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "expires_in");
}

#[test]
fn the_test_ping_is_sent_now_signed_and_answered_with_the_attempt() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint_for(&receiver.url("/ping"), &[FAILED]);
    let id = endpoint["id"].as_str().unwrap();
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["object"], "webhook_delivery");
    assert_eq!(resp.body["status"], "succeeded");
    assert_eq!(resp.body["response_status"], 200);
    assert_eq!(resp.body["event_type"], "webhook_endpoint.test");
    assert!(resp.body["duration_ms"].as_u64().is_some());
    let got = receiver.received("/ping");
    assert_eq!(got.len(), 1, "sent before the answer");
    assert!(got[0].stile_signature_valid(endpoint["secret"].as_str().unwrap()).0);
    assert_eq!(got[0].json()["type"], "webhook_endpoint.test");
    assert_eq!(got[0].json()["data"]["id"], id);

    receiver.set("/ping", Behaviour::Status(500));
    let failed = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(failed.body["status"], "failed");
    assert_eq!(failed.body["response_status"], 500);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/ping").len(), 2, "a failed ping is not retried");
}

#[test]
fn resend_delivers_the_same_event_again() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint(&receiver.url("/again"));
    let other = server.create_endpoint_for(&receiver.url("/other"), &[FAILED]);
    let event = server.publish(VERIFIED, session("vks_8"));
    let event_id = event["id"].as_str().unwrap();
    receiver.wait_for("/again", 1, WAIT);
    server.wait_settled(event_id, WAIT);

    let resent = server.post(&format!("/v1/events/{event_id}/resend"), json!({}));
    assert_eq!(resent.status, 200, "{}", resent.text);
    assert_eq!(resent.body["id"], event_id);
    let got = receiver.wait_for("/again", 2, WAIT);
    assert_eq!(got[0].body, got[1].body, "same id, same body");

    // To one named endpoint, even one not subscribed to the type.
    let other_id = other["id"].as_str().unwrap();
    let resp = server.post(&format!("/v1/events/{event_id}/resend"), json!({"endpoint": other_id}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    receiver.wait_for("/other", 1, WAIT);
    server.wait_settled(event_id, WAIT);
    assert_eq!(receiver.received("/again").len(), 2);
    assert_eq!(server.deliveries(endpoint["id"].as_str().unwrap()).len(), 2);

    let missing = server.post("/v1/events/evt_01JA0000000000000000000000/resend", json!({}));
    missing.assert_error(404, "invalid_request_error", "resource_missing");
    let bad = server.post(&format!("/v1/events/{event_id}/resend"), json!({"endpoint": "we_nope"}));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "endpoint");
}

#[test]
fn deleting_an_endpoint_cancels_its_pending_retries() {
    // The retry is due long after the delete, however slow the run (on Postgres on a busy
    // machine, 400 ms was not always enough); were it not cancelled it would still come.
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(2); 3]);
    let receiver = Receiver::start();
    receiver.set("/doomed", Behaviour::Status(500));
    let endpoint = server.create_endpoint(&receiver.url("/doomed"));
    let id = endpoint["id"].as_str().unwrap().to_string();
    let event = server.publish(VERIFIED, session("vks_9"));
    receiver.wait_for("/doomed", 1, WAIT);
    assert!(eventually(
        WAIT,
        || server.get(&format!("/v1/webhook_endpoints/{id}/deliveries")).body["data"][0]["status"] == "pending"
    ));
    assert_eq!(server.delete(&format!("/v1/webhook_endpoints/{id}")).status, 200);
    let event_id = event["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/events/{event_id}")).body["pending_webhooks"], 0, "cancelled at once");
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/doomed").len(), 1, "no retry after the delete");
}

#[test]
fn a_slow_endpoint_does_not_delay_a_healthy_one() {
    let server = TestServer::start_with(|c| {
        c.delivery.workers = 8;
        c.delivery.per_endpoint_concurrency = 2;
        c.delivery.timeout = Duration::from_secs(10);
    });
    let receiver = Receiver::start();
    receiver.set("/slow", Behaviour::Delay(Duration::from_secs(4)));
    server.create_endpoint(&receiver.url("/slow"));
    server.create_endpoint(&receiver.url("/fast"));
    let started = std::time::Instant::now();
    for n in 0..30 {
        server.publish(VERIFIED, session(&format!("vks_s{n}")));
    }
    let fast = receiver.wait_for("/fast", 30, WAIT);
    let took = fast.last().unwrap().at.duration_since(started);
    assert!(took < Duration::from_secs(3), "the healthy endpoint got all 30 in {took:?}");
    assert!(receiver.received("/slow").len() <= 2, "the slow one is capped at 2 in flight");
}

#[test]
fn delivery_detail_shows_the_request_that_was_sent() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint(&receiver.url("/detail"));
    let id = endpoint["id"].as_str().unwrap();
    let event = server.publish(VERIFIED, session("vks_10"));
    server.wait_settled(event["id"].as_str().unwrap(), WAIT);
    let attempt = &server.deliveries(id)[0];
    let wd = attempt["id"].as_str().unwrap();
    assert!(wd.starts_with("wd_"));
    let detail = server.get(&format!("/v1/webhook_endpoints/{id}/deliveries/{wd}"));
    assert_eq!(detail.status, 200, "{}", detail.text);
    let got = &receiver.received("/detail")[0];
    assert_eq!(detail.body["request"]["body"].as_str().unwrap().as_bytes(), got.body.as_slice());
    // Every header as the receiver got it (the store keeps the signed headers and the
    // trace compact and rebuilds them when read).
    let sent = detail.body["request"]["headers"].as_object().unwrap();
    assert_eq!(sent.len(), 7, "{sent:?}");
    assert!(sent.contains_key("traceparent"), "{sent:?}");
    for (name, value) in sent {
        assert_eq!(value.as_str(), Some(got.header(name)), "{name}");
    }
    assert_eq!(detail.body["request"]["headers"]["webhook-id"], event["id"]);

    let other = server.create_endpoint(&receiver.url("/x"));
    let wrong = server.get(&format!("/v1/webhook_endpoints/{}/deliveries/{wd}", other["id"].as_str().unwrap()));
    wrong.assert_error(404, "invalid_request_error", "resource_missing");
    let missing = server.get("/v1/webhook_endpoints/we_01JA0000000000000000000000/deliveries");
    missing.assert_error(404, "invalid_request_error", "resource_missing");
    let bad = server.get(&format!("/v1/webhook_endpoints/{id}/deliveries?status=lost"));
    assert_eq!(bad.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "status");
}

#[test]
fn a_large_backlog_on_one_endpoint_does_not_starve_another() {
    // More queued attempts for the stalled endpoint than the scheduler keeps in memory for
    // one endpoint, published before the healthy endpoint's events.
    // The stall outlasts the test however slow the machine (the receiver, dropped first,
    // ends it).
    let server = TestServer::start_with(|c| {
        c.delivery.per_endpoint_concurrency = 2;
        c.delivery.timeout = Duration::from_secs(90);
    });
    let receiver = Receiver::start();
    receiver.set("/stalled", Behaviour::Delay(Duration::from_secs(60)));
    server.create_endpoint_for(&receiver.url("/stalled"), &[FAILED]);
    server.create_endpoint_for(&receiver.url("/healthy"), &[VERIFIED]);
    let body = |kind: &str, n: usize| json!({"type": kind, "data": {"id": format!("vks_{n}")}});
    let publish_all = |kind: &'static str, count: usize| {
        const PUBLISHERS: usize = 4;
        std::thread::scope(|scope| {
            for publisher in 0..PUBLISHERS {
                let server = &server;
                scope.spawn(move || {
                    for n in (publisher..count).step_by(PUBLISHERS) {
                        assert_eq!(server.post("/v1/events", body(kind, n)).status, 200);
                    }
                });
            }
        });
    };
    publish_all(FAILED, 1_500);
    publish_all(VERIFIED, 300);
    let got = receiver.wait_for("/healthy", 300, Duration::from_secs(50));
    assert_eq!(got.len(), 300);
    assert!(receiver.received("/stalled").len() <= 2);
}

#[test]
fn deleting_a_disabled_endpoint_ends_its_parked_retries() {
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(100)]);
    let receiver = Receiver::start();
    receiver.set("/parked", Behaviour::Status(500));
    let endpoint = server.create_endpoint(&receiver.url("/parked"));
    let id = endpoint["id"].as_str().unwrap().to_string();
    let event = server.publish(VERIFIED, session("vks_p"));
    receiver.wait_for("/parked", 1, WAIT);
    assert_eq!(server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"status": "disabled"})).status, 200);
    // The retry comes due and is parked (off the queue, still pending).
    server.wait_queue_empty(WAIT);
    let event_path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    assert_eq!(server.get(&event_path).body["pending_webhooks"], 1);
    assert_eq!(server.delete(&format!("/v1/webhook_endpoints/{id}")).status, 200);
    assert_eq!(server.get(&event_path).body["pending_webhooks"], 0, "the parked retry ended with the endpoint");
    // A restart finds nothing to resume.
    let server = server.restart();
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.received("/parked").len(), 1);
    assert_eq!(server.get(&event_path).body["pending_webhooks"], 0);
}

#[test]
fn retry_now_runs_a_scheduled_retry_at_once() {
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(3600)]);
    let receiver = Receiver::start();
    receiver.set("/later", Behaviour::FailFirst(1));
    let endpoint = server.create_endpoint(&receiver.url("/later"));
    let id = endpoint["id"].as_str().unwrap().to_string();
    let event = server.publish(VERIFIED, session("vks_r"));
    receiver.wait_for("/later", 1, WAIT);
    assert!(eventually(WAIT, || server.deliveries(&id).len() == 2));
    let attempts = server.deliveries(&id);
    let (pending, retrying) = (&attempts[0], &attempts[1]);
    assert_eq!((pending["status"].as_str(), retrying["status"].as_str()), (Some("pending"), Some("retrying")));

    // Named by the failed attempt: its scheduled retry goes now, not in an hour.
    let path =
        |wd: &serde_json::Value| format!("/v1/webhook_endpoints/{id}/deliveries/{}/retry", wd["id"].as_str().unwrap());
    let moved = server.post(&path(retrying), json!({}));
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.body["id"], pending["id"]);
    receiver.wait_for("/later", 2, WAIT);
    server.wait_settled(event["id"].as_str().unwrap(), WAIT);
    assert_eq!(server.deliveries(&id)[0]["status"], "succeeded");

    let done = server.post(&path(&server.deliveries(&id)[0]), json!({}));
    assert!(
        done.assert_error(400, "invalid_request_error", "invalid_state")["message"]
            .as_str()
            .unwrap()
            .contains("succeeded")
    );
    let missing =
        server.post(&format!("/v1/webhook_endpoints/{id}/deliveries/wd_01JA0000000000000000000000/retry"), json!({}));
    missing.assert_error(404, "invalid_request_error", "resource_missing");
}
