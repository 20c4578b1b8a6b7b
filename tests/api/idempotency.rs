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

/// Sends `bodies` at once to `bases` (round-robin), all with the key `key`; answers
/// (status, event id or error code) in the order sent.
fn publish_at_once(bases: &[&str], key: &str, bodies: &[serde_json::Value]) -> Vec<(u16, String)> {
    std::thread::scope(|scope| {
        let calls: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let base = bases[i % bases.len()];
                scope.spawn(move || {
                    let resp = crate::common::Req::new("POST", format!("{base}/v1/events"))
                        .key(crate::common::TEST_KEY)
                        .header("idempotency-key", key)
                        .json(body)
                        .send();
                    let said = match resp.status {
                        200 => resp.body["id"].as_str().unwrap_or_default().to_string(),
                        _ => resp.body["error"]["code"].as_str().unwrap_or_default().to_string(),
                    };
                    (resp.status, said)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

/// Races 20 publishes with one key, ten rounds: one event per key, every 200 the same
/// event, the rest 409 while it runs, and a different body never a second event.
fn one_request_runs_per_key(bases: &[&str], events_of: impl Fn(&str) -> usize) {
    let event = |n: usize| json!({"type": "verification_session.verified", "data": {"id": format!("vs_{n}")}});
    for round in 0..10 {
        let key = format!("race-same-{round}");
        let answers = publish_at_once(bases, &key, &vec![event(round); 20]);
        let ids: std::collections::BTreeSet<&str> =
            answers.iter().filter(|(s, _)| *s == 200).map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids.len(), 1, "round {round}: {answers:?}");
        for (status, said) in &answers {
            assert!(*status == 200 || (*status == 409 && said == "idempotency_key_in_use"), "{answers:?}");
        }
        assert_eq!(events_of(&format!("vs_{round}")), 1, "round {round}: the request ran twice");

        let key = format!("race-different-{round}");
        let bodies: Vec<_> = (0..20).map(|i| event(1_000 + round * 100 + i)).collect();
        let answers = publish_at_once(bases, &key, &bodies);
        assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "round {round}: {answers:?}");
        for (status, said) in answers.iter().filter(|(s, _)| *s != 200) {
            assert!(
                (*status == 409 && said == "idempotency_key_in_use")
                    || (*status == 400 && said == "idempotency_key_reused"),
                "{answers:?}"
            );
        }
    }
}

/// How many events of `server` carry `data.id`.
fn events_with_id(server: &TestServer, id: &str) -> usize {
    let page = server.get("/v1/events?limit=100").body["data"].clone();
    page.as_array().unwrap().iter().filter(|e| e["data"]["id"] == id).count()
}

#[test]
fn racing_requests_with_one_key_run_once() {
    let server = TestServer::start();
    one_request_runs_per_key(&[&server.base], |id| events_with_id(&server, id));
}

#[test]
fn racing_requests_with_one_key_run_once_across_processes_sharing_a_database() {
    let Some((a, b)) = crate::processes::two_servers() else { return };
    one_request_runs_per_key(&[&a.base, &b.base], |id| events_with_id(&a, id));
}
