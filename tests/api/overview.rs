//! The aggregate routes the dashboard reads: `/v1/delivery_stats`, `/v1/event_types`
//! and `/v1/events/:id/deliveries`.

use std::time::Duration;

use serde_json::json;

use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{LIVE_KEY, TestServer};

#[test]
fn stats_count_attempts_per_bucket_and_endpoint_and_list_recent_failures() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(503));
    // One retry only, so the failing delivery ends (failed) within the test.
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![Duration::from_millis(10)]);
    let ok = server.create_endpoint(&receiver.url("/ok"));
    let down = server.create_endpoint(&receiver.url("/down"));
    let events: Vec<String> = (0..3)
        .map(|i| {
            server.publish("verification_session.verified", json!({"id": format!("vks_{i}")}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &events {
        server.wait_settled(id, Duration::from_secs(10));
    }

    let stats = server.get("/v1/delivery_stats");
    assert_eq!(stats.status, 200, "{}", stats.text);
    let body = &stats.body;
    assert_eq!(body["object"], "delivery_stats");
    assert_eq!(body["livemode"], false);
    // 3 successes to /ok; 3 deliveries × 2 attempts failing at /down.
    assert_eq!(body["totals"], json!({"succeeded": 3, "failed": 6, "filtered": 0}), "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert!(buckets.len() >= 48 && buckets.len() <= 50, "24 h of 30-minute buckets: {}", buckets.len());
    let summed: u64 = buckets.iter().map(|b| b["succeeded"].as_u64().unwrap()).sum();
    assert_eq!(summed, 3);
    assert!(buckets.windows(2).all(|w| w[1]["start"].as_i64() > w[0]["start"].as_i64()), "oldest first");
    let per_endpoint = |id: &serde_json::Value| {
        body["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint_id"] == *id).cloned().unwrap()
    };
    assert_eq!(
        per_endpoint(&ok["id"]),
        json!({"endpoint_id": ok["id"], "succeeded": 3, "failed": 0, "filtered": 0, "pending": 0})
    );
    assert_eq!(
        per_endpoint(&down["id"]),
        json!({"endpoint_id": down["id"], "succeeded": 0, "failed": 6, "filtered": 0, "pending": 0})
    );
    assert_eq!(body["pending"], 0);
    let failures = body["recent_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 6);
    assert!(failures.iter().all(|f| f["endpoint_id"] == down["id"] && f["response_status"] == 503));
    assert!(failures.windows(2).all(|w| w[0]["id"].as_str() > w[1]["id"].as_str()), "newest first");

    // The other mode sees none of it.
    let live = server.req("GET", "/v1/delivery_stats").key(LIVE_KEY).send();
    assert_eq!(live.body["totals"], json!({"succeeded": 0, "failed": 0, "filtered": 0}));
    assert_eq!(live.body["endpoints"], json!([]));
    assert_eq!(live.body["recent_failures"], json!([]));

    // A window with nothing in it, and a bad one.
    let old = server.get("/v1/delivery_stats?since=1000000&until=1003600&bucket=600");
    assert_eq!(old.body["totals"], json!({"succeeded": 0, "failed": 0, "filtered": 0}));
    assert_eq!(old.body["buckets"].as_array().unwrap().len(), 7);
    server.get("/v1/delivery_stats?bucket=61").assert_error(400, "invalid_request_error", "parameter_invalid");
    // Times far outside any calendar are refused before any arithmetic on them (a
    // schemathesis run found `since=i64::MIN` overflowing the window's width).
    for query in ["since=-9223372036854775808&bucket=60", "until=9223372036854775807", "since=-1", "bucket=30"] {
        let resp = server.get(&format!("/v1/delivery_stats?{query}"));
        let param = query.split('=').next().unwrap();
        assert_eq!(resp.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], param, "{query}");
    }
}

#[test]
fn an_events_deliveries_show_where_it_went_and_how_it_went() {
    let receiver = Receiver::start();
    receiver.set("/down", Behaviour::Status(500));
    let server = TestServer::start_with(|c| c.delivery.retry_schedule = vec![]);
    let ok = server.create_endpoint(&receiver.url("/ok"));
    let down = server.create_endpoint(&receiver.url("/down"));
    let event = server.publish("verification_session.created", json!({"id": "vks_1"}));
    let id = event["id"].as_str().unwrap();
    server.wait_settled(id, Duration::from_secs(10));

    let list = server.get(&format!("/v1/events/{id}/deliveries"));
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["object"], "list");
    assert_eq!(list.body["has_more"], false);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let of = |endpoint: &serde_json::Value| data.iter().find(|d| d["endpoint_id"] == *endpoint).unwrap();
    assert_eq!(of(&ok["id"])["status"], "succeeded");
    assert_eq!(of(&down["id"])["status"], "failed");
    assert_eq!(of(&down["id"])["response_status"], 500);

    // A resend adds a round; unknown and other-mode events are 404s.
    assert_eq!(server.post(&format!("/v1/events/{id}/resend"), json!({})).status, 200);
    server.wait_settled(id, Duration::from_secs(10));
    assert_eq!(server.get(&format!("/v1/events/{id}/deliveries")).body["data"].as_array().unwrap().len(), 4);
    server.req("GET", &format!("/v1/events/{id}/deliveries")).key(LIVE_KEY).send().assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
}

#[test]
fn event_types_list_the_built_in_and_the_configured_types() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".to_string()]);
    let resp = server.get("/v1/event_types");
    assert_eq!(resp.status, 200, "{}", resp.text);
    let data = resp.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 7 + 4 + 1, "the built-in types, Kayle's names for four of them, and the custom one");
    let find = |name: &str| data.iter().find(|t| t["name"] == name).cloned();
    assert_eq!(find("invoice.paid").unwrap()["built_in"], false);
    assert_eq!(find("verification_session.verified").unwrap()["built_in"], true);
    assert_eq!(find("verification_session.verified").unwrap()["alias_of"], serde_json::Value::Null);
    let kayle = find("verification.session.succeeded").unwrap();
    assert_eq!(
        (kayle["built_in"].as_bool(), kayle["alias_of"].as_str()),
        (Some(true), Some("verification_session.verified"))
    );
    assert!(find("webhook_endpoint.test").is_none(), "the ping type cannot be subscribed to");
    assert_eq!(server.req("GET", "/v1/event_types").no_key().send().status, 401);
}

#[test]
fn a_declared_event_type_checks_published_data_against_its_schema() {
    let server = TestServer::start_with(|c| {
        c.events.types = vec![stile::event_types::EventTypeDecl {
            name: "invoice.paid".into(),
            description: "An invoice was paid.".into(),
            schema: Some(r#"{"type": "object", "required": ["id", "amount"], "properties": {"id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}}}"#.into()),
            example: Some(r#"{"id": "in_1", "amount": 1200}"#.into()),
            ..Default::default()
        }];
    });
    let ok = server.post("/v1/events", json!({"type": "invoice.paid", "data": {"id": "in_1", "amount": 5}}));
    assert_eq!(ok.status, 200, "{}", ok.text);
    for (data, pointer) in [
        (json!({"id": "in_1"}), "`/`"),
        (json!({"id": "in_1", "amount": -3}), "`/amount`"),
        (json!({"id": 7, "amount": 3}), "`/id`"),
    ] {
        let refused = server.post("/v1/events", json!({"type": "invoice.paid", "data": data.clone()}));
        let error = refused.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "data");
        assert!(error["message"].as_str().unwrap().contains(pointer), "{data}: {error}");
    }
    assert_eq!(server.get("/v1/events").body["data"].as_array().unwrap().len(), 1, "refused events are not stored");
    let types = server.get("/v1/event_types").body;
    let paid = types["data"].as_array().unwrap().iter().find(|t| t["name"] == "invoice.paid").unwrap().clone();
    assert_eq!(paid["description"], "An invoice was paid.");
    assert_eq!(paid["schema"]["required"], json!(["id", "amount"]));
    assert_eq!(paid["example"], json!({"id": "in_1", "amount": 1200}));
    // Send example: the type's example data to one endpoint, signed, now.
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint_for(&receiver.url("/ex"), &["verification_session.created"]);
    let (id, secret) = (endpoint["id"].as_str().unwrap(), endpoint["secret"].as_str().unwrap());
    let sent = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({"event_type": "invoice.paid"}));
    assert_eq!((sent.status, sent.body["status"].clone()), (200, json!("succeeded")), "{}", sent.text);
    let got = receiver.wait_for("/ex", 1, Duration::from_secs(10));
    assert_eq!(got[0].json()["type"], "invoice.paid");
    assert_eq!(got[0].json()["data"], json!({"id": "in_1", "amount": 1200}));
    assert!(got[0].stile_signature_valid(secret).0);
    for event_type in ["invoice.unknown", "verification.session.succeeded"] {
        let refused = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({"event_type": event_type}));
        let error = refused.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert!(error["message"].as_str().unwrap().contains("that can be sent"), "{error}");
    }
    let verified = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "verification_session.verified")
        .unwrap()
        .clone();
    assert!(verified["description"].as_str().unwrap().contains("verified"));
    assert_eq!(verified["example"]["status"], "verified");
}

#[test]
fn a_catalogue_that_cannot_be_used_stops_start_up_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = stile::config::Config::default();
    config.server.data_dir = dir.path().join("data");
    config.events.types = vec![stile::event_types::EventTypeDecl {
        name: "invoice.paid".into(),
        schema: Some(r#"{"type": 5}"#.into()),
        ..Default::default()
    }];
    let Err(err) = crate::common::block_on(stile::prepare(config)) else {
        panic!("a server started with an unusable schema")
    };
    assert!(matches!(err, stile::StartError::EventTypes(_)), "{err}");
    assert!(err.to_string().contains("invoice.paid"), "{err}");
    assert!(!dir.path().join("data").exists(), "refused before the data file was made");
}
