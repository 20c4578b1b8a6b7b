//! `/v1/event_types`: the catalogue managed through the API, per mode; schemas checked on
//! publish; archived types kept for history but not subscribed to anew.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::{LIVE_KEY, TestServer};

const WAIT: Duration = Duration::from_secs(10);

const ORDER_SCHEMA: &str = r#"{
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"type": "string", "pattern": "^ord_"}, "total": {"type": "integer", "minimum": 0}}
}"#;

fn order_type() -> Value {
    json!({
        "name": "order.paid",
        "description": "An order was paid.",
        "schema": serde_json::from_str::<Value>(ORDER_SCHEMA).unwrap(),
        "example": {"id": "ord_1", "total": 1200},
    })
}

fn names(resp: &crate::common::Resp) -> Vec<String> {
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_type_created_through_the_api_types_events_of_its_mode_only() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".into()]);
    let created = server.post("/v1/event_types", order_type());
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["object"], "event_type");
    assert_eq!(created.body["name"], "order.paid");
    assert_eq!(created.body["source"], "api");
    assert_eq!(created.body["built_in"], false);
    assert_eq!(created.body["archived"], false);
    assert!(created.body["created"].as_i64().unwrap() > 0);
    assert_eq!(server.get("/v1/event_types/order.paid").body, created.body);
    assert!(names(&server.get("/v1/event_types")).contains(&"order.paid".to_string()));
    assert_eq!(server.get("/v1/event_types/invoice.paid").body["source"], "config");
    assert_eq!(server.get("/v1/event_types/verification_session.verified").body["source"], "built_in");

    // Its schema is checked on publish, with the failing value's pointer.
    server.publish("order.paid", json!({"id": "ord_2", "total": 5}));
    let bad = server.post("/v1/events", json!({"type": "order.paid", "data": {"id": "ord_3", "total": -1}}));
    let error = bad.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(error["param"], "data");
    assert!(error["message"].as_str().unwrap().contains("/total"), "{error}");

    // The other mode has none of it.
    let live = |method: &str, path: &str| server.req(method, path).key(LIVE_KEY);
    assert!(!names(&live("GET", "/v1/event_types").send()).contains(&"order.paid".to_string()));
    live("GET", "/v1/event_types/order.paid").send().assert_error(404, "invalid_request_error", "resource_missing");
    let published = live("POST", "/v1/events").json(&json!({"type": "order.paid", "data": {}})).send();
    assert_eq!(published.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "type");
    let subscribed = live("POST", "/v1/webhook_endpoints")
        .json(&json!({"url": "https://example.com/hook", "enabled_events": ["order.paid"]}))
        .send();
    assert_eq!(
        subscribed.assert_error(400, "invalid_request_error", "parameter_invalid")["param"],
        "enabled_events[0]"
    );
    // ... and may have its own type of that name.
    let own = live("POST", "/v1/event_types").json(&json!({"name": "order.paid"})).send();
    assert_eq!((own.status, own.body["schema"].clone()), (200, Value::Null), "{}", own.text);
    assert_eq!(
        live("POST", "/v1/events").json(&json!({"type": "order.paid", "data": {"total": -1}})).send().status,
        200
    );

    // Kept across a restart, schema and all.
    let server = server.restart();
    assert_eq!(server.get("/v1/event_types/order.paid").body, created.body);
    let bad = server.post("/v1/events", json!({"type": "order.paid", "data": {"id": "nope", "total": 1}}));
    assert!(
        bad.assert_error(400, "invalid_request_error", "parameter_invalid")["message"]
            .as_str()
            .unwrap()
            .contains("/id")
    );
}

#[test]
fn creating_checks_every_field_and_changes_nothing_when_refused() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".into()]);
    assert_eq!(server.post("/v1/event_types", order_type()).status, 200);
    let with = |change: Value| {
        let mut body = json!({"name": "shipment.sent"});
        body.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        body
    };
    let cases = [
        (json!({"description": "no name"}), "parameter_missing", "name"),
        (with(json!({"name": "Shipment"})), "parameter_invalid", "name"),
        (with(json!({"name": "verification_session.other"})), "parameter_invalid", "name"),
        (with(json!({"name": "invoice.paid"})), "parameter_invalid", "name"),
        (with(json!({"name": "order.paid"})), "parameter_invalid", "name"),
        (with(json!({"schema": {"type": 5}})), "parameter_invalid", "schema"),
        (with(json!({"schema": {"$ref": "https://example.com/remote.json"}})), "parameter_invalid", "schema"),
        (with(json!({"schema": [1]})), "parameter_invalid", "schema"),
        (with(json!({"example": "text"})), "parameter_invalid", "example"),
        (with(json!({"schema": {"required": ["id"]}, "example": {}})), "parameter_invalid", "example"),
        (with(json!({"description": "d".repeat(5001)})), "parameter_invalid", "description"),
        (with(json!({"archived": true})), "parameter_unknown", "archived"),
    ];
    for (body, code, param) in cases {
        let resp = server.post("/v1/event_types", body.clone());
        assert_eq!(resp.assert_error(400, "invalid_request_error", code)["param"], param, "{body}");
    }
    let exists = server.post("/v1/event_types", json!({"name": "invoice.paid"}));
    assert!(exists.body["error"]["message"].as_str().unwrap().contains("already exists"), "{}", exists.text);
    assert!(!names(&server.get("/v1/event_types?include_archived=true")).contains(&"shipment.sent".to_string()));
    server.get("/v1/event_types?include_archived=yes").assert_error(400, "invalid_request_error", "parameter_invalid");
}

#[test]
fn updates_replace_what_they_name_and_only_api_types_change() {
    let server = TestServer::start_with(|c| c.events.custom_types = vec!["invoice.paid".into()]);
    let created = server.post("/v1/event_types", order_type()).body;

    let updated = server.post("/v1/event_types/order.paid", json!({"description": "Paid in full."}));
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["description"], "Paid in full.");
    assert_eq!(updated.body["schema"], created["schema"], "untouched");
    assert!(updated.body["updated"].as_i64().is_some());

    // An example that the schema would refuse is refused; dropping the schema lets it in.
    let refused = server.req("PATCH", "/v1/event_types/order.paid").json(&json!({"example": {"total": "x"}})).send();
    assert_eq!(refused.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "example");
    let patched = server
        .req("PATCH", "/v1/event_types/order.paid")
        .json(&json!({"schema": null, "example": {"total": "x"}}))
        .send();
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!((patched.body["schema"].clone(), patched.body["example"].clone()), (Value::Null, json!({"total": "x"})));
    server.publish("order.paid", json!({"anything": true}));

    // A new schema applies to the next publish.
    let strict =
        server.post("/v1/event_types/order.paid", json!({"schema": {"required": ["id"]}, "example": {"id": 1}}));
    assert_eq!(strict.status, 200, "{}", strict.text);
    server.post("/v1/events", json!({"type": "order.paid", "data": {}})).assert_error(
        400,
        "invalid_request_error",
        "parameter_invalid",
    );

    for name in ["invoice.paid", "verification_session.verified"] {
        let resp = server.post(&format!("/v1/event_types/{name}"), json!({"description": "mine now"}));
        let error = resp.assert_error(400, "invalid_request_error", "invalid_state");
        assert!(error["message"].as_str().unwrap().contains(name), "{error}");
        server.delete(&format!("/v1/event_types/{name}")).assert_error(400, "invalid_request_error", "invalid_state");
    }
    server.post("/v1/event_types/nothing.here", json!({})).assert_error(
        404,
        "invalid_request_error",
        "resource_missing",
    );
    server.delete("/v1/event_types/nothing.here").assert_error(404, "invalid_request_error", "resource_missing");
}

#[test]
fn an_archived_type_keeps_its_subscribers_but_gets_no_new_ones() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    assert_eq!(server.post("/v1/event_types", order_type()).status, 200);
    assert_eq!(server.post("/v1/event_types", json!({"name": "order.refunded"})).status, 200);
    let subscriber = server.create_endpoint_for(&receiver.url("/orders"), &["order.paid"]);
    let subscriber_id = subscriber["id"].as_str().unwrap();

    let archived = server.delete("/v1/event_types/order.paid");
    assert_eq!((archived.status, archived.body["archived"].clone()), (200, json!(true)), "{}", archived.text);
    assert_eq!(server.delete("/v1/event_types/order.paid").status, 200, "archiving twice is harmless");
    assert!(!names(&server.get("/v1/event_types")).contains(&"order.paid".to_string()));
    assert!(names(&server.get("/v1/event_types?include_archived=true")).contains(&"order.paid".to_string()));

    // No new subscriptions, in any dialect.
    let fresh =
        server.post("/v1/webhook_endpoints", json!({"url": receiver.url("/new"), "enabled_events": ["order.paid"]}));
    let error = fresh.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert!(error["message"].as_str().unwrap().contains("archived"), "{error}");
    let other = server.create_endpoint_for(&receiver.url("/other"), &["order.refunded"]);
    let adding = server.post(
        &format!("/v1/webhook_endpoints/{}", other["id"].as_str().unwrap()),
        json!({"enabled_events": ["order.refunded", "order.paid"]}),
    );
    assert_eq!(adding.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "enabled_events[1]");
    let apps = server.get("/v1/apps").body["data"].as_array().unwrap().clone();
    let default_app = apps.iter().find(|a| a["default"] == true).unwrap()["id"].as_str().unwrap().to_string();
    let app_scoped = server
        .req("POST", &format!("/apps/{default_app}/webhooks"))
        .json(&json!({"url": receiver.url("/x"), "events": ["order.paid"]}))
        .send();
    assert_eq!((app_scoped.status, app_scoped.body["success"].clone()), (400, json!(false)), "{}", app_scoped.text);

    // The subscriber keeps it (an update may list it again) and still receives its events.
    let kept = server.post(
        &format!("/v1/webhook_endpoints/{subscriber_id}"),
        json!({"enabled_events": ["order.paid", "order.refunded"]}),
    );
    assert_eq!(kept.status, 200, "{}", kept.text);
    let event = server.publish("order.paid", json!({"id": "ord_9", "total": 1}));
    assert_eq!(event["pending_webhooks"], 1);
    let got = receiver.wait_for("/orders", 1, WAIT);
    assert_eq!(got[0].json()["type"], "order.paid");
    assert_eq!(got[0].stile_signature_valid(subscriber["secret"].as_str().unwrap()), (true, 1));

    // Restored, it is open to everyone again, and that lasts across a restart.
    let server = {
        let restored = server.post("/v1/event_types/order.paid", json!({"archived": false}));
        assert_eq!(restored.body["archived"], false, "{}", restored.text);
        server.delete("/v1/event_types/order.refunded");
        server.restart()
    };
    assert!(names(&server.get("/v1/event_types")).contains(&"order.paid".to_string()));
    assert_eq!(server.get("/v1/event_types/order.refunded").body["archived"], true);
    server.create_endpoint_for(&receiver.url("/later"), &["order.paid"]);
}

#[test]
fn only_unrestricted_keys_manage_the_catalogue() {
    let server = TestServer::start();
    assert_eq!(server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"})).status, 200);
    assert_eq!(server.post("/v1/event_types", order_type()).status, 200);
    let (server, restricted) = server.restart_with_key_for("acme");
    let as_restricted = |method: &str, path: &str| server.req(method, path).key(&restricted);
    assert!(names(&as_restricted("GET", "/v1/event_types").send()).contains(&"order.paid".to_string()));
    assert_eq!(as_restricted("GET", "/v1/event_types/order.paid").send().status, 200);
    let create = json!({"name": "shipment.sent"});
    let change = json!({"description": "Mine now."});
    for (method, path, body) in [
        ("POST", "/v1/event_types", &create),
        ("POST", "/v1/event_types/order.paid", &change),
        ("PATCH", "/v1/event_types/order.paid", &change),
        ("DELETE", "/v1/event_types/order.paid", &json!({})),
    ] {
        let resp = as_restricted(method, path).json(body).send();
        let error = resp.assert_error(403, "permission_error", "insufficient_permissions");
        assert!(error["message"].as_str().unwrap().contains("event types"), "{method} {path}: {error}");
    }
    assert_eq!(server.get("/v1/event_types/order.paid").body["archived"], false);

    // A portal token reads the catalogue and cannot change it.
    let token = server.post("/v1/apps/acme/portal_sessions", json!({})).body["token"].as_str().unwrap().to_string();
    let as_portal = |method: &str, path: &str| server.req(method, path).key(&token);
    assert_eq!(
        as_portal("GET", "/v1/event_types/order.paid").send().body["example"],
        json!({"id": "ord_1", "total": 1200})
    );
    for (method, path) in [("POST", "/v1/event_types"), ("DELETE", "/v1/event_types/order.paid")] {
        as_portal(method, path).json(&json!({"name": "shipment.sent"})).send().assert_error(
            403,
            "permission_error",
            "insufficient_permissions",
        );
    }
}
