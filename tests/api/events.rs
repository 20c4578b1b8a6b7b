//! `/v1/events`: publishing rules, retrieval and list filters.

use serde_json::json;

use crate::common::{LIVE_KEY, TestServer};

#[test]
fn publishing_checks_the_type_and_the_data() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".into()]);
    let ok = server.post("/v1/events", json!({"type": "invoice.paid", "data": {"id": "in_1", "amount": 5}}));
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["object"], "event");
    assert_eq!(ok.body["type"], "invoice.paid");
    assert_eq!(ok.body["data"], json!({"id": "in_1", "amount": 5}));
    assert_eq!(ok.body["pending_webhooks"], 0, "no endpoints yet");

    let cases = [
        (json!({"data": {}}), "parameter_missing", "type"),
        (json!({"type": "invoice.unpaid", "data": {}}), "parameter_invalid", "type"),
        (json!({"type": "webhook_endpoint.test", "data": {}}), "parameter_invalid", "type"),
        (json!({"type": "invoice.paid", "data": [1, 2]}), "parameter_invalid", "data"),
        (json!({"type": "invoice.paid", "data": {}, "extra": 1}), "parameter_unknown", "extra"),
    ];
    for (body, code, param) in cases {
        let resp = server.post("/v1/events", body.clone());
        assert_eq!(resp.assert_error(400, "invalid_request_error", code)["param"], param, "{body}");
    }
    let huge = json!({"type": "invoice.paid", "data": {"blob": "x".repeat(257 * 1024)}});
    server.post("/v1/events", huge).assert_error(413, "invalid_request_error", "payload_too_large");
    let list = server.get("/v1/events");
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1, "nothing half-written by refused publishes");
}

#[test]
fn an_event_reads_back_as_published_in_its_own_mode_only() {
    let server = TestServer::start();
    let event =
        server.publish("verification_session.created", json!({"id": "vks_1", "object": "verification_session"}));
    let id = event["id"].as_str().unwrap();
    let fetched = server.get(&format!("/v1/events/{id}"));
    assert_eq!(fetched.body, event);
    let live = server.req("GET", &format!("/v1/events/{id}")).key(LIVE_KEY).send();
    live.assert_error(404, "invalid_request_error", "resource_missing");
    server.get("/v1/events/evt_bad").assert_error(404, "invalid_request_error", "resource_missing");
}

#[test]
fn publishing_with_an_idempotency_key_creates_one_event() {
    let server = TestServer::start();
    let body = json!({"type": "verification_session.created", "data": {"id": "vks_1"}});
    let send = || server.req("POST", "/v1/events").header("idempotency-key", "evt-once").json(&body).send();
    let first = send();
    let second = send();
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(server.get("/v1/events").body["data"].as_array().unwrap().len(), 1);
}

#[test]
fn the_event_list_filters_by_type_time_and_session_and_pages() {
    let server = TestServer::start();
    let mut ids = Vec::new();
    for (n, kind) in ["created", "processing", "verified", "created", "verified"].iter().enumerate() {
        let event = server.publish(&format!("verification_session.{kind}"), json!({"id": format!("vks_{}", n % 2)}));
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    let list_ids = |query: &str| -> Vec<String> {
        let resp = server.get(&format!("/v1/events?{query}"));
        assert_eq!(resp.status, 200, "{query}: {}", resp.text);
        resp.body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(list_ids(""), ids.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(list_ids("type=verification_session.verified"), [ids[4].clone(), ids[2].clone()]);
    assert_eq!(list_ids("session_id=vks_1"), [ids[3].clone(), ids[1].clone()]);
    assert_eq!(list_ids("session_id=vks_1&type=verification_session.created"), [ids[3].clone()]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(list_ids(&format!("created_after={}", now + 10)).len(), 0);
    assert_eq!(list_ids(&format!("created_before={}", now + 10)).len(), 5);
    assert_eq!(list_ids(&format!("created_after={}", now - 60)).len(), 5);
    assert_eq!(list_ids("limit=2"), [ids[4].clone(), ids[3].clone()]);
    assert_eq!(list_ids(&format!("limit=2&starting_after={}", ids[3])), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(
        list_ids(&format!("limit=2&type=verification_session.created&starting_after={}", ids[4])),
        [ids[3].clone(), ids[0].clone()]
    );
    for (query, param) in [
        ("created_after=yesterday", "created_after"),
        ("created_before=-9223372036854775808", "created_before"),
        ("created_after=253402300800", "created_after"),
        ("limit=500", "limit"),
        ("starting_after=evt_nope", "starting_after"),
    ] {
        let resp = server.get(&format!("/v1/events?{query}"));
        assert_eq!(resp.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], param);
    }
}
