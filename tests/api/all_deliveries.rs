//! `GET /v1/deliveries`: the application's attempts across its endpoints, newest first.
//! Each page, both ways and under each filter, is checked against the union of the
//! endpoints' own lists; another application's attempts never appear.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestServer;
use crate::common::receiver::{Behaviour, Receiver};

const WAIT: Duration = Duration::from_secs(20);

/// Every page of `GET path` (a query string of filters, or none), `limit` 3, walked
/// older by `starting_after` and then back newer by `ending_before` from the oldest: the
/// ids newest first. Panics if the walk back does not meet the walk forward.
fn walk(server: &TestServer, filters: &str) -> Vec<String> {
    let page = |cursor: &str| {
        let resp = server.get(&format!("/v1/deliveries?limit=3{filters}{cursor}"));
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.body["url"], "/v1/deliveries");
        let ids: Vec<String> =
            resp.body["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
        (ids, resp.body["has_more"].as_bool().unwrap())
    };
    let mut forward = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let (ids, more) = page(&cursor);
        assert!(ids.len() <= 3);
        forward.extend(ids);
        if !more {
            break;
        }
        cursor = format!("&starting_after={}", forward.last().unwrap());
    }
    if let Some(oldest) = forward.last() {
        let mut back: Vec<String> = Vec::new();
        let mut before = oldest.clone();
        for _ in 0..100 {
            let (ids, more) = page(&format!("&ending_before={before}"));
            let Some(newest) = ids.first().cloned() else { break };
            back.splice(0..0, ids);
            before = newest;
            if !more {
                break;
            }
        }
        assert_eq!(back, forward[..forward.len() - 1], "{filters}: the walk back meets the walk forward");
    }
    forward
}

#[test]
fn the_applications_deliveries_across_endpoints_page_both_ways_under_every_filter() {
    // A failure's retry is an hour away: it waits, pending, and the set stays fixed.
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(3600)]);
    let receiver = Receiver::start();
    receiver.set("/bad", Behaviour::Status(500));
    let ok = server.create_endpoint(&receiver.url("/ok"))["id"].as_str().unwrap().to_string();
    let bad = server.create_endpoint(&receiver.url("/bad"))["id"].as_str().unwrap().to_string();
    let verified_only = server.create_endpoint_for(&receiver.url("/verified"), &["verification_session.verified"]);
    let verified_only = verified_only["id"].as_str().unwrap().to_string();
    for n in 0..7 {
        let event_type = if n % 2 == 0 { "verification_session.created" } else { "verification_session.verified" };
        server.publish(event_type, json!({"id": format!("vks_{n}")}));
    }
    // Another application's delivery, which the default application never sees.
    assert_eq!(server.post("/v1/apps", json!({"name": "Other", "uid": "other"})).status, 200);
    let other = server
        .req("POST", "/v1/webhook_endpoints")
        .header("Stile-App", "other")
        .json(&json!({"url": receiver.url("/other"), "enabled_events": ["*"]}))
        .send();
    assert_eq!(other.status, 200, "{}", other.text);
    let other_endpoint = other.body["id"].as_str().unwrap().to_string();
    let published = server
        .req("POST", "/v1/events")
        .header("Stile-App", "other")
        .json(&json!({"type": "verification_session.created", "data": {}}))
        .send();
    assert_eq!(published.status, 200);
    receiver.wait_for("/other", 1, WAIT);
    // What each endpoint's own list holds, newest first, once every first attempt is made
    // (the retries wait): 7 to `ok`, 7 and their 7 retries to `bad`, 3 to `verified_only`.
    let mut all: Vec<Value> = Vec::new();
    let settled = crate::common::eventually(WAIT, || {
        all = [&ok, &bad, &verified_only].iter().flat_map(|e| server.deliveries(e)).collect();
        all.len() == 7 + 14 + 3 && all.iter().filter(|d| d["status"] == "pending").count() == 7
    });
    assert!(settled, "{all:#?}");
    all.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    let ids = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        all.iter().filter(|d| keep(d)).map(|d| d["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(walk(&server, ""), ids(&|_| true));
    for status in ["succeeded", "retrying", "pending"] {
        let expected = ids(&|d| d["status"] == status);
        assert!(!expected.is_empty(), "{status} occurs");
        assert_eq!(walk(&server, &format!("&status={status}")), expected, "{status}");
    }
    let verified = ids(&|d| d["event_type"] == "verification_session.verified");
    assert_eq!(verified.len(), 3 + 6 + 3);
    assert_eq!(walk(&server, "&event_type=verification_session.verified"), verified);
    assert_eq!(walk(&server, &format!("&endpoint={bad}")), ids(&|d| d["endpoint_id"] == bad.as_str()));
    assert_eq!(
        walk(&server, &format!("&endpoint={ok}&event_type=verification_session.created&status=succeeded")),
        ids(&|d| d["endpoint_id"] == ok.as_str() && d["event_type"] == "verification_session.created")
    );
    assert!(walk(&server, "&status=failed").is_empty(), "nothing has failed for good");
    assert!(walk(&server, "&event_type=nothing.of.this.type").is_empty());

    // Bad parameters: a 400 naming each.
    let error = |query: &str, param: &str| {
        let resp = server.get(&format!("/v1/deliveries?{query}"));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], param, "{query}: {}", resp.text);
    };
    let other_attempt = server
        .req("GET", &format!("/v1/webhook_endpoints/{other_endpoint}/deliveries"))
        .header("Stile-App", "other")
        .send();
    let other_attempt = other_attempt.body["data"][0]["id"].as_str().unwrap().to_string();
    error(&format!("starting_after={other_attempt}"), "starting_after");
    error(&format!("endpoint={other_endpoint}"), "endpoint");
    error("endpoint=nope", "endpoint");
    error("limit=0", "limit");
    error(&format!("event_type={}", "x".repeat(201)), "event_type");
    let bad_status = server.get("/v1/deliveries?status=lost");
    assert_eq!(bad_status.status, 400, "{}", bad_status.text);
    // The other application sees its own delivery only.
    let theirs = server.req("GET", "/v1/deliveries").header("Stile-App", "other").send();
    let theirs: Vec<&str> = theirs.body["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(theirs, [other_attempt.as_str()]);
}
