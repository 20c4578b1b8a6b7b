//! The Kayle endpoints API of seed 003 (`/v1/webhooks/endpoints`): the seed's request as
//! written, the answer shape it documents, Kayle-named events delivered signed, bad input
//! in the dialect's envelope, and the same endpoints seen through the Stile API.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::{Req, Resp, TEST_KEY, TestServer};

const WAIT: Duration = Duration::from_secs(15);
const PATH: &str = "/v1/webhooks/endpoints";

/// The field names of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value.as_object().unwrap_or_else(|| panic!("an object: {value}")).keys().map(String::as_str).collect()
}

/// Asserts a successful answer of this dialect and returns its `data`.
fn data(resp: &Resp) -> &Value {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(keys(&resp.body), BTreeSet::from(["data", "error"]), "{}", resp.text);
    assert_eq!(resp.body["error"], Value::Null);
    &resp.body["data"]
}

/// Asserts an error of this dialect (`{data: null, error: {code, message}}`).
fn assert_kayle_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"), "{}", resp.text);
    assert_eq!(keys(&resp.body), BTreeSet::from(["data", "error"]), "{}", resp.text);
    assert_eq!(resp.body["data"], Value::Null, "{}", resp.text);
    assert_eq!(keys(&resp.body["error"]), BTreeSet::from(["code", "message"]), "{}", resp.text);
    assert_eq!(resp.body["error"]["code"], code, "{}", resp.text);
    assert!(resp.body["error"]["message"].as_str().is_some_and(|m| m.len() > 10), "{}", resp.text);
}

/// Whether `text` is an ISO 8601 UTC time.
fn is_iso8601(text: &Value) -> bool {
    text.as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T')
}

const ENDPOINT_FIELDS: [&str; 11] = [
    "id",
    "organization_id",
    "name",
    "labels",
    "url",
    "enabled",
    "subscribed_event_types",
    "created_at",
    "updated_at",
    "disabled_at",
    "undelivered_payload_retention_hours",
];

#[test]
fn the_seeds_request_as_written_gets_the_documented_answer() {
    let server = TestServer::start();
    // The seed's curl body, byte for byte but for the name and label placeholders.
    let sent = json!({
        "url": "https://example.com/webhooks/kayle",
        "name": "Production",
        "labels": ["billing"],
        "enabled": true,
        "subscribed_event_types": [],
        "undelivered_payload_retention_hours": 72
    });
    let created = Req::new("POST", format!("{}{PATH}", server.base))
        .header("Authorization", &format!("Bearer {TEST_KEY}"))
        .raw(serde_json::to_vec(&sent).unwrap(), "application/json")
        .send();
    let created = data(&created).clone();
    assert_eq!(keys(&created), BTreeSet::from(["endpoint", "signing_secret"]));
    assert!(created["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    let endpoint = &created["endpoint"];
    assert_eq!(keys(endpoint), BTreeSet::from(ENDPOINT_FIELDS));
    assert_eq!(endpoint["url"], "https://example.com/webhooks/kayle");
    assert_eq!(endpoint["name"], "Production");
    assert_eq!(endpoint["labels"], json!(["billing"]));
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["disabled_at"], Value::Null);
    assert_eq!(endpoint["undelivered_payload_retention_hours"], 72);
    assert!(is_iso8601(&endpoint["created_at"]) && is_iso8601(&endpoint["updated_at"]), "{endpoint}");
    // [] means every Kayle type, and is answered as sent (the seed's own example).
    assert_eq!(endpoint["subscribed_event_types"], json!([]));
    // The organization is the default application.
    let default_app = server.get("/v1/apps?limit=100").body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["default"] == true)
        .unwrap()["id"]
        .clone();
    assert_eq!(endpoint["organization_id"], default_app);

    // One kind of endpoint: the Stile API lists it, with its name and labels.
    let id = endpoint["id"].as_str().unwrap();
    let stile = server.get(&format!("/v1/webhook_endpoints/{id}"));
    assert_eq!(stile.status, 200, "{}", stile.text);
    assert_eq!(stile.body["name"], "Production");
    assert_eq!(stile.body["labels"], json!(["billing"]));
    // The Stile API shows what is stored: the four Kayle names.
    let four: Vec<&str> =
        stile.body["enabled_events"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(four.len(), 4, "{four:?}");
    assert!(four.iter().all(|t| t.starts_with("verification.session.")), "{four:?}");

    // Retrieve, list, update, delete in the same envelope.
    let one = server.get(&format!("{PATH}/{id}"));
    assert_eq!(data(&one)["endpoint"], *endpoint);
    let page = server.get(&format!("{PATH}?label=billing"));
    assert_eq!(keys(data(&page)), BTreeSet::from(["endpoints", "has_more", "next_cursor"]));
    assert_eq!(data(&page)["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(data(&page)["endpoints"][0]["subscribed_event_types"], json!([]));
    // An update that leaves the types alone keeps the [].
    let renamed = server.req("PATCH", &format!("{PATH}/{id}")).json(&json!({"name": "Production 2"})).send();
    assert_eq!(data(&renamed)["endpoint"]["subscribed_event_types"], json!([]));
    // The four names sent explicitly are answered as the four names; [] again as [].
    let names = json!([
        "verification.session.succeeded",
        "verification.session.failed",
        "verification.session.expired",
        "verification.session.cancelled"
    ]);
    let explicit = server.req("PATCH", &format!("{PATH}/{id}")).json(&json!({"subscribed_event_types": names})).send();
    assert_eq!(data(&explicit)["endpoint"]["subscribed_event_types"], names);
    let all = server.req("PATCH", &format!("{PATH}/{id}")).json(&json!({"subscribed_event_types": []})).send();
    assert_eq!(data(&all)["endpoint"]["subscribed_event_types"], json!([]));
    // The same four types sent again through the Stile API, in another order (as the
    // dashboard's form sends them), change nothing.
    let reordered = json!([
        "verification.session.cancelled",
        "verification.session.expired",
        "verification.session.failed",
        "verification.session.succeeded"
    ]);
    let resent = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"enabled_events": reordered}));
    assert_eq!(resent.status, 200, "{}", resent.text);
    assert_eq!(data(&server.get(&format!("{PATH}/{id}")))["endpoint"]["subscribed_event_types"], json!([]));
    // Types changed through the Stile API are shown as they now are.
    let changed =
        server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"enabled_events": ["verification.session.failed"]}));
    assert_eq!(changed.status, 200, "{}", changed.text);
    let shown = server.get(&format!("{PATH}/{id}"));
    assert_eq!(data(&shown)["endpoint"]["subscribed_event_types"], json!(["verification.session.failed"]));
    assert!(data(&server.get(&format!("{PATH}?label=other")))["endpoints"].as_array().unwrap().is_empty());

    let paused = server
        .req("PATCH", &format!("{PATH}/{id}"))
        .json(&json!({"enabled": false, "name": null, "labels": ["ops"], "undelivered_payload_retention_hours": 0,
                      "subscribed_event_types": ["verification.session.failed"]}))
        .send();
    let paused = data(&paused)["endpoint"].clone();
    assert_eq!(paused["enabled"], false);
    assert!(is_iso8601(&paused["disabled_at"]), "{paused}");
    assert_eq!(paused["name"], Value::Null);
    assert_eq!(paused["labels"], json!(["ops"]));
    assert_eq!(paused["undelivered_payload_retention_hours"], 0);
    assert_eq!(paused["subscribed_event_types"], json!(["verification.session.failed"]));
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["status"], "disabled");
    let resumed = server.req("PATCH", &format!("{PATH}/{id}")).json(&json!({"enabled": true})).send();
    assert_eq!(data(&resumed)["endpoint"]["disabled_at"], Value::Null);

    let deleted = server.req("DELETE", &format!("{PATH}/{id}")).send();
    assert_eq!(*data(&deleted), json!({"id": id, "deleted": true}));
    assert_kayle_error(&server.get(&format!("{PATH}/{id}")), 404, "resource_missing");
    assert_kayle_error(&server.req("DELETE", &format!("{PATH}/{id}")).send(), 404, "resource_missing");
}

#[test]
fn kayle_named_events_arrive_signed_under_the_kayle_name_while_stile_endpoints_get_stile_names() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let kayle = server
        .req("POST", PATH)
        .json(&json!({"url": receiver.url("/kayle"), "subscribed_event_types": ["verification.session.succeeded"]}))
        .send();
    let secret = data(&kayle)["signing_secret"].as_str().unwrap().to_string();
    let stile = server.create_endpoint(&receiver.url("/stile"));
    let stile_secret = stile["secret"].as_str().unwrap().to_string();

    // A session driven with the test helpers to verified.
    let session = server.post("/v1/verification_sessions", json!({"type": "document"}));
    let id = session.body["id"].as_str().unwrap();
    for action in ["process", "verify"] {
        let moved = server.post(&format!("/v1/test_helpers/verification_sessions/{id}/{action}"), json!({}));
        assert_eq!(moved.status, 200, "{}", moved.text);
    }
    let got = receiver.wait_for("/kayle", 1, WAIT);
    let body = got[0].json();
    assert_eq!(body["type"], "verification.session.succeeded");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["status"], "verified");
    assert!(got[0].standard_signature_valid(&secret).0);
    got[0].verify_with_libraries(&secret).unwrap();

    // The Stile endpoint got all three events under Stile's names, the verified one with
    // the same event id.
    let stile_got = receiver.wait_for("/stile", 3, WAIT);
    let verified = stile_got.iter().find(|r| r.json()["type"] == "verification_session.verified").unwrap();
    assert_eq!(verified.json()["id"], body["id"]);
    assert!(verified.standard_signature_valid(&stile_secret).0);
    // Only the verified event went to the Kayle endpoint.
    let kayle_id = data(&kayle)["endpoint"]["id"].as_str().unwrap();
    let deliveries = server.deliveries(kayle_id);
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["event_type"], "verification.session.succeeded");

    // A resend to it goes under the Kayle name again, byte for byte the same payload.
    let event_id = body["id"].as_str().unwrap();
    let resent = server.post(&format!("/v1/events/{event_id}/resend"), json!({"endpoint": kayle_id}));
    assert_eq!(resent.status, 200, "{}", resent.text);
    let again = receiver.wait_for("/kayle", 2, WAIT);
    assert_eq!(again[1].body, got[0].body);

    // Kayle names are for subscribing, not publishing.
    let published = server.post("/v1/events", json!({"type": "verification.session.succeeded", "data": {}}));
    let error = published.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert!(error["message"].as_str().unwrap().contains("verification_session.verified"), "{error}");
}

#[test]
fn bad_input_gets_the_kayle_envelope_with_a_4xx() {
    let server = TestServer::start();
    let ok = |extra: Value| {
        let mut body = json!({"url": "https://example.com/hook"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({}), "parameter_missing"),
        (ok(json!({"labels": (0..9).map(|i| format!("l{i}")).collect::<Vec<_>>()})), "parameter_invalid"),
        (ok(json!({"name": "n".repeat(121)})), "parameter_invalid"),
        (ok(json!({"name": ""})), "parameter_invalid"),
        (ok(json!({"subscribed_event_types": ["verification.session.unknown"]})), "parameter_invalid"),
        (ok(json!({"subscribed_event_types": ["verification_session.verified"]})), "parameter_invalid"),
        (json!({"url": "http://example.com/hook"}), "parameter_invalid"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2048))}), "parameter_invalid"),
        (ok(json!({"undelivered_payload_retention_hours": 10000})), "parameter_invalid"),
        (ok(json!({"undelivered_payload_retention_hours": -1})), "parameter_invalid"),
        (ok(json!({"undelivered_payload_retention_hours": 1.5})), "parameter_invalid"),
        (ok(json!({"undelivered_payload_retention_hours": "72"})), "parameter_invalid"),
        (ok(json!({"enabled": "yes"})), "parameter_invalid"),
        (ok(json!({"labels": "billing"})), "parameter_invalid"),
        (json!({"url": 5}), "parameter_invalid"),
        (ok(json!({"events": ["x"]})), "parameter_unknown"),
    ];
    for (body, code) in cases {
        let resp = server.req("POST", PATH).json(&body).send();
        assert_kayle_error(&resp, 400, code);
    }
    let not_json = server.req("POST", PATH).raw("{", "application/json").send();
    assert_kayle_error(&not_json, 400, "invalid_json");
    assert!(data(&server.get(PATH))["endpoints"].as_array().unwrap().is_empty(), "nothing was written");

    // Keys, paths and methods, in the same envelope.
    assert_kayle_error(&server.req("GET", PATH).no_key().send(), 401, "api_key_missing");
    assert_kayle_error(&server.req("GET", PATH).key("vk_test_wrong").send(), 401, "api_key_invalid");
    assert_kayle_error(&server.get("/v1/webhooks/nothing"), 404, "route_not_found");
    assert_kayle_error(&server.get(&format!("{PATH}/we_nope")), 404, "resource_missing");
    assert_kayle_error(&server.req("PUT", PATH).send(), 405, "method_not_allowed");
    assert_kayle_error(&server.get(&format!("{PATH}?limit=0")), 400, "parameter_invalid");
    assert_kayle_error(&server.get(&format!("{PATH}?cursor=nope")), 400, "parameter_invalid");
    assert_kayle_error(&server.get(&format!("{PATH}?label=not%20one")), 400, "parameter_invalid");
}

#[test]
fn the_organization_is_the_application_and_pages_walk_with_cursors() {
    let server = TestServer::start();
    let app = server.post("/v1/apps", json!({"name": "Acme", "uid": "acme"}));
    let app_id = app.body["id"].as_str().unwrap().to_string();
    let mut made = Vec::new();
    for n in 0..3 {
        let created = server
            .req("POST", PATH)
            .header("Stile-App", "acme")
            .json(&json!({"url": format!("https://example.com/{n}")}))
            .send();
        assert_eq!(data(&created)["endpoint"]["organization_id"], app_id.as_str());
        made.push(data(&created)["endpoint"]["id"].as_str().unwrap().to_string());
    }
    // Not the default application's.
    assert!(data(&server.get(PATH))["endpoints"].as_array().unwrap().is_empty());
    assert_kayle_error(&server.get(&format!("{PATH}/{}", made[0])), 404, "resource_missing");

    let page = |cursor: Option<&str>| {
        let path = match cursor {
            Some(c) => format!("{PATH}?limit=2&cursor={c}"),
            None => format!("{PATH}?limit=2"),
        };
        data(&server.req("GET", &path).header("Stile-App", "acme").send()).clone()
    };
    let first = page(None);
    let ids = |p: &Value| {
        p["endpoints"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), [made[2].clone(), made[1].clone()], "newest first");
    assert_eq!(first["has_more"], true);
    let second = page(first["next_cursor"].as_str());
    assert_eq!(ids(&second), [made[0].clone()]);
    assert_eq!(second["has_more"], false);
    assert_eq!(second["next_cursor"], Value::Null);

    // An app-restricted key acts on its own application without the header.
    let (server, key) = server.restart_with_key_for(&app_id);
    let listed = server.req("GET", PATH).key(&key).send();
    assert_eq!(data(&listed)["endpoints"].as_array().unwrap().len(), 3);
}
