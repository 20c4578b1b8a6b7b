//! Operational webhooks: the platform's own endpoints hear what happens to its customers'
//! endpoints, signed and recorded like any delivery, and never about themselves. On the
//! backend the suite runs on.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestServer;
use crate::common::receiver::{Behaviour, Receiver};

const WAIT: Duration = Duration::from_secs(20);

/// The operational events `path` received so far: (type, data).
fn heard(receiver: &Receiver, path: &str) -> Vec<(String, Value)> {
    let events = receiver.received(path).iter().map(|r| r.json()).collect::<Vec<_>>();
    events.iter().map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone())).collect()
}

#[test]
fn an_endpoints_life_is_told_to_the_operational_endpoints_once_per_change() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let created = server.post(
        "/v1/operational_webhook_endpoints",
        json!({"url": receiver.url("/ops"), "enabled_events": ["*"], "name": "ops"}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let ops = created.body["id"].as_str().unwrap().to_string();
    let secret = created.body["secret"].as_str().unwrap().to_string();
    // One that hears everything to the end, while other operational endpoints come and go.
    let all = server
        .post("/v1/operational_webhook_endpoints", json!({"url": receiver.url("/ops-all"), "enabled_events": ["*"]}));
    assert_eq!(all.status, 200, "{}", all.text);
    // A second operational endpoint: nothing is told about it (nor about the first).
    let only_disabled = server.post(
        "/v1/operational_webhook_endpoints",
        json!({"url": receiver.url("/ops-disabled"), "enabled_events": ["endpoint.disabled"]}),
    );
    assert_eq!(only_disabled.status, 200, "{}", only_disabled.text);

    // A customer's endpoint: created, changed, disabled, enabled, deleted.
    let endpoint = server.create_endpoint(&receiver.url("/hook"));
    let id = endpoint["id"].as_str().unwrap().to_string();
    let path = format!("/v1/webhook_endpoints/{id}");
    let described = server.post(&path, json!({"description": "billing"}));
    assert_eq!(described.status, 200, "{}", described.text);
    assert_eq!(server.post(&path, json!({"status": "disabled"})).status, 200);
    assert_eq!(server.post(&path, json!({"status": "disabled"})).status, 200, "disabled again: no change");
    assert_eq!(server.post(&path, json!({"status": "enabled"})).status, 200);
    assert_eq!(server.post(&format!("{path}/rotate_secret"), json!({})).status, 200);
    assert_eq!(server.req("DELETE", &path).send().status, 200);

    receiver.wait_for("/ops", 6, WAIT);
    server.wait_queue_empty(WAIT);
    let told = heard(&receiver, "/ops");
    let types: Vec<&str> = told.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "endpoint.created",
            "endpoint.updated",
            "endpoint.disabled",
            "endpoint.enabled",
            "endpoint.updated",
            "endpoint.deleted"
        ],
        "{told:#?}"
    );
    let default_app =
        server.get("/v1/apps").body["data"].as_array().unwrap().iter().find(|a| a["default"] == true).unwrap()["id"]
            .clone();
    for (event_type, data) in &told {
        assert_eq!(data["endpoint"]["id"], id.as_str(), "{event_type}");
        assert_eq!(data["application"]["id"], default_app, "{event_type}");
        assert!(data["reason"].as_str().is_some_and(|r| !r.is_empty()), "{event_type}: {data}");
    }
    assert_eq!(told[2].1["endpoint"]["status"], "disabled");
    assert_eq!(told[2].1["reason"], "disabled through the API");
    // Signed with the operational endpoint's own secret.
    for request in receiver.received("/ops") {
        assert!(request.stile_signature_valid(&secret).0);
        assert!(request.standard_signature_valid(&secret).0);
    }
    let disabled_only = heard(&receiver, "/ops-disabled");
    assert_eq!(disabled_only.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["endpoint.disabled"]);

    // Recorded like any delivery, under the operational endpoint.
    let history = server.get(&format!("/v1/operational_webhook_endpoints/{ops}/deliveries"));
    assert_eq!(history.status, 200, "{}", history.text);
    let statuses: Vec<&str> =
        history.body["data"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded"; 6]);

    // What was told about the endpoint, newest first, found by the endpoint it is about
    // (its `data.id`), as the dashboard's endpoint view shows it.
    let about = server.get(&format!("/v1/operational_events?endpoint_id={id}"));
    assert_eq!(about.status, 200, "{}", about.text);
    let listed: Vec<(&str, &str)> = about.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["data"]["id"].as_str().unwrap()))
        .collect();
    let mut newest_first: Vec<&str> = types.clone();
    newest_first.reverse();
    assert_eq!(listed.iter().map(|(t, _)| *t).collect::<Vec<_>>(), newest_first, "{}", about.text);
    assert!(listed.iter().all(|(_, about)| *about == id), "{}", about.text);
    assert!(about.body["data"].as_array().unwrap().iter().all(|e| e["pending_webhooks"] == 0), "{}", about.text);
    let disabled = server.get(&format!("/v1/operational_events?endpoint_id={id}&type=endpoint.disabled&limit=5"));
    assert_eq!(disabled.body["data"].as_array().unwrap().len(), 1, "{}", disabled.text);
    let other = server.create_endpoint(&receiver.url("/other"))["id"].as_str().unwrap().to_string();
    let none = server.get(&format!("/v1/operational_events?endpoint_id={other}&type=endpoint.deleted"));
    assert_eq!(none.body["data"], json!([]), "{}", none.text);
    server.get("/v1/operational_events?type=verification_session.created").assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );
    server.get("/v1/operational_events?endpoint_id=nope").assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(server.req("DELETE", &format!("/v1/webhook_endpoints/{other}")).send().status, 200);

    // Operational endpoints are theirs alone: not among the webhook endpoints, no
    // application of their own in the list; they list, change and go by their own routes.
    let listed = server.get("/v1/operational_webhook_endpoints");
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3, "{}", listed.text);
    assert!(server.get("/v1/webhook_endpoints").body["data"].as_array().unwrap().is_empty());
    assert_eq!(server.get("/v1/apps").body["data"].as_array().unwrap().len(), 1);
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{ops}")).status, 404);
    let patched = server
        .req("PATCH", &format!("/v1/operational_webhook_endpoints/{ops}"))
        .json(&json!({"enabled_events": ["endpoint.deleted"]}))
        .send();
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["enabled_events"], json!(["endpoint.deleted"]));
    let gone = server.req("DELETE", &format!("/v1/operational_webhook_endpoints/{ops}")).send();
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(server.get(&format!("/v1/operational_webhook_endpoints/{ops}")).status, 404);
    // Operational endpoints were created, changed and deleted: nothing told of them.
    server.wait_queue_empty(WAIT);
    let all = heard(&receiver, "/ops-all");
    assert_eq!(all.len(), 8, "with the other endpoint's creation and deletion: {all:#?}");
    assert!(all[..6].iter().all(|(_, data)| data["endpoint"]["id"] == id.as_str()), "{all:#?}");
}

#[test]
fn operational_endpoints_take_operational_types_and_unrestricted_keys_only() {
    let server = TestServer::start();
    let create = |events: Value| {
        server.post(
            "/v1/operational_webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/ops", "enabled_events": events}),
        )
    };
    for bad in [json!(["verification_session.verified"]), json!(["endpoint.nope"]), json!([])] {
        let resp = create(bad.clone());
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert!(error["param"].as_str().unwrap().starts_with("enabled_events"), "{bad}: {}", resp.text);
    }
    assert_eq!(create(json!(["message.attempt.exhausted", "endpoint.disabled"])).status, 200);
    let types = server.get("/v1/operational_event_types");
    assert_eq!(types.status, 200, "{}", types.text);
    let names: Vec<&str> = types.body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 8);
    assert!(names.contains(&"message.attempt.recovered") && names.contains(&"endpoint.enabled"), "{names:?}");
    // A customer endpoint cannot subscribe to an operational type.
    let customer = server.post(
        "/v1/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["endpoint.created"]}),
    );
    customer.assert_error(400, "invalid_request_error", "parameter_invalid");

    assert_eq!(server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).status, 200);
    let (server, key) = server.restart_with_key_for("acme");
    for (method, path) in [
        ("GET", "/v1/operational_webhook_endpoints"),
        ("POST", "/v1/operational_webhook_endpoints"),
        ("GET", "/v1/operational_events"),
    ] {
        let resp = server
            .req(method, path)
            .key(&key)
            .json(&json!({"url": "http://127.0.0.1:9/ops", "enabled_events": ["*"]}))
            .send();
        let error = resp.assert_error(403, "permission_error", "insufficient_permissions");
        assert!(error["message"].as_str().unwrap().contains("restricted"), "{}", resp.text);
    }
}

/// A server whose retries come 100 ms apart, `retries` of them, with endpoints failing
/// after `failing_after` failed attempts in a row; and an operational endpoint at
/// `/ops` of `receiver` that hears everything.
fn told_server(receiver: &Receiver, retries: usize, failing_after: u32) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.delivery.retry_schedule = vec![Duration::from_millis(100); retries];
        c.delivery.failing_after = failing_after;
    });
    let ops =
        server.post("/v1/operational_webhook_endpoints", json!({"url": receiver.url("/ops"), "enabled_events": ["*"]}));
    assert_eq!(ops.status, 200, "{}", ops.text);
    server
}

#[test]
fn a_failing_run_is_told_once_and_so_is_its_recovery() {
    let receiver = Receiver::start();
    let server = told_server(&receiver, 5, 3);
    receiver.set("/hook", Behaviour::FailFirst(3));
    let endpoint = server.create_endpoint(&receiver.url("/hook"));
    let id = endpoint["id"].as_str().unwrap();
    let event = server.publish("verification_session.created", json!({"id": "vks_1"}));
    receiver.wait_for("/hook", 4, WAIT);
    receiver.wait_for("/ops", 3, WAIT);
    server.wait_queue_empty(WAIT);
    let told = heard(&receiver, "/ops");
    let types: Vec<&str> = told.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["endpoint.created", "message.attempt.failing", "message.attempt.recovered"], "{told:#?}");
    let (failing, recovered) = (&told[1].1, &told[2].1);
    assert_eq!((failing["failures"].as_u64(), recovered["failures"].as_u64()), (Some(3), Some(3)));
    assert_eq!(failing["attempt"]["number"], 3);
    assert_eq!(recovered["attempt"]["number"], 4);
    assert_eq!(recovered["attempt"]["status"], "succeeded");
    for data in [failing, recovered] {
        assert_eq!(data["endpoint"]["id"], id);
        assert_eq!(data["event"]["id"], event["id"]);
        assert!(data["application"]["id"].as_str().unwrap().starts_with("app_"));
    }
}

#[test]
fn a_delivery_failing_for_good_and_an_endpoint_disabled_are_each_told_once() {
    let receiver = Receiver::start();
    let server = told_server(&receiver, 1, 0);
    receiver.set("/down", Behaviour::Status(500));
    receiver.set("/gone", Behaviour::Status(410));
    let down = server.create_endpoint_for(&receiver.url("/down"), &["verification_session.created"]);
    let gone = server.create_endpoint_for(&receiver.url("/gone"), &["verification_session.processing"]);
    // Two deliveries to `down` fail twice each: two exhausted. Three to `gone` are refused
    // with 410 at once: one disabling.
    for n in 0..2 {
        server.publish("verification_session.created", json!({"id": format!("vks_d{n}")}));
    }
    for n in 0..3 {
        server.publish("verification_session.processing", json!({"id": format!("vks_g{n}")}));
    }
    receiver.wait_for("/down", 4, WAIT);
    receiver.wait_for("/ops", 2 + 2 + 1, WAIT);
    server.wait_queue_empty(WAIT);
    let told = heard(&receiver, "/ops");
    let of = |t: &str| told.iter().filter(|(kind, _)| kind == t).map(|(_, d)| d.clone()).collect::<Vec<_>>();
    let exhausted = of("message.attempt.exhausted");
    assert_eq!(exhausted.len(), 2, "{told:#?}");
    assert!(exhausted.iter().all(|d| d["endpoint"]["id"] == down["id"] && d["attempt"]["number"] == 2));
    assert!(exhausted.iter().all(|d| d["attempt"]["status"] == "failed" && d["attempt"]["response_status"] == 500));
    let disabled = of("endpoint.disabled");
    assert_eq!(disabled.len(), 1, "one disabling, however many attempts saw 410: {told:#?}");
    assert_eq!(disabled[0]["endpoint"]["id"], gone["id"]);
    assert_eq!(disabled[0]["endpoint"]["status"], "disabled");
    assert!(disabled[0]["reason"].as_str().unwrap().contains("410"), "{}", disabled[0]);
    assert!(of("message.attempt.failing").is_empty(), "failing_after 0 tells of no runs");
    // The operational endpoint's own deliveries are recorded; nothing tells of them.
    let ops = server.get("/v1/operational_webhook_endpoints").body["data"][0]["id"].as_str().unwrap().to_string();
    let history = server.get(&format!("/v1/operational_webhook_endpoints/{ops}/deliveries?limit=100"));
    assert_eq!(history.body["data"].as_array().unwrap().len(), told.len());
}
