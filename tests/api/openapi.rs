//! `GET /v1/openapi.json`: the document names every route the server answers, with the
//! methods it answers them with, and nothing it does not.

use serde_json::{Value, json};

use crate::common::{Req, TestServer};

/// Every route the SPEC and docs/ name, as `METHOD /path`. The document must have
/// each one (it may have more; the probes below check those against the server).
const NAMED_ROUTES: &[&str] = &[
    "GET /healthz",
    "GET /metrics",
    "GET /admin/backup",
    "GET /v1/openapi.json",
    "GET /v1/webhook_endpoints",
    "POST /v1/webhook_endpoints",
    "GET /v1/webhook_endpoints/{id}",
    "POST /v1/webhook_endpoints/{id}",
    "DELETE /v1/webhook_endpoints/{id}",
    "POST /v1/webhook_endpoints/{id}/rotate_secret",
    "GET /v1/webhook_endpoints/{id}/secret",
    "POST /v1/webhook_endpoints/{id}/test",
    "POST /v1/webhook_endpoints/{id}/recover",
    "GET /v1/webhook_endpoints/{id}/deliveries",
    "GET /v1/webhook_endpoints/{id}/deliveries/{delivery}",
    "POST /v1/webhook_endpoints/{id}/deliveries/{delivery}/retry",
    "GET /v1/events",
    "POST /v1/events",
    "GET /v1/events/{id}",
    "POST /v1/events/{id}/resend",
    "GET /v1/events/{id}/deliveries",
    "GET /v1/event_types",
    "POST /v1/event_types",
    "GET /v1/event_types/{name}",
    "POST /v1/event_types/{name}",
    "PATCH /v1/event_types/{name}",
    "DELETE /v1/event_types/{name}",
    "GET /v1/listen",
    "GET /v1/delivery_stats",
    "GET /v1/verification_sessions",
    "POST /v1/verification_sessions",
    "GET /v1/verification_sessions/{id}",
    "POST /v1/verification_sessions/{id}/cancel",
    "POST /v1/test_helpers/verification_sessions/{id}/{action}",
    "GET /v1/apps",
    "POST /v1/apps",
    "GET /v1/apps/{id}",
    "POST /v1/apps/{id}",
    "DELETE /v1/apps/{id}",
    "POST /v1/apps/{id}/portal_sessions",
    "DELETE /v1/apps/{id}/portal_sessions/{session_id}",
    "GET /apps/{appId}/webhooks",
    "POST /apps/{appId}/webhooks",
    "PUT /apps/{appId}/webhooks/{webhookId}",
    "DELETE /apps/{appId}/webhooks/{webhookId}",
    "POST /apps/{appId}/webhooks/{webhookId}/rotate-secret",
    "POST /apps/{appId}/webhooks/{webhookId}/test-ping",
    "GET /apps/{appId}/webhooks/{webhookId}/deliveries",
    "POST /v1/webhooks/endpoints",
    "GET /v1/webhooks/endpoints",
    "GET /v1/webhooks/endpoints/{id}",
    "PATCH /v1/webhooks/endpoints/{id}",
    "DELETE /v1/webhooks/endpoints/{id}",
];

const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "PUT", "PATCH"];

fn document(server: &TestServer) -> Value {
    let resp = Req::new("GET", format!("{}/v1/openapi.json", server.base)).no_key().send();
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.body
}

/// The document's operations as `METHOD /path`.
fn operations(doc: &Value) -> Vec<String> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    ops
}

/// A concrete path for a templated one, with ids of the right shape that name nothing.
fn concrete(path: &str) -> String {
    path.replace("/webhook_endpoints/{id}", "/webhook_endpoints/we_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("{delivery}", "wd_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("/events/{id}", "/events/evt_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("/verification_sessions/{id}", "/verification_sessions/vks_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("{action}", "verify")
        .replace("{session_id}", "ps_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("/apps/{id}", "/apps/app_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("/webhooks/endpoints/{id}", "/webhooks/endpoints/we_01JD8Y6QK4N2V7X3ZB5C9R1T0M")
        .replace("{appId}", "acme")
        .replace("{webhookId}", "0193a5c2-7e4f-7d41-9c3a-2b1f0e9d8c7b")
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let server = TestServer::start();
    let doc = document(&server);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "stile");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let ops = operations(&doc);
    for route in NAMED_ROUTES {
        assert!(ops.iter().any(|op| op == route), "{route} is not in the document: {ops:?}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{name} has an operationId");
            assert!(op["summary"].as_str().is_some_and(|s| s.len() > 5), "{name} has a summary");
            let responses = op["responses"].as_object().unwrap();
            let success = match (method.as_str(), path.as_str()) {
                ("delete", path) if path.starts_with("/apps/") => "204",
                ("get", "/v1/listen") => "101", // a WebSocket
                _ => "200",
            };
            assert!(responses.contains_key(success), "{name} documents its success");
            for (status, response) in responses {
                assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{name} {status}");
            }
            if path.starts_with("/v1/") && path != "/v1/openapi.json" {
                assert_eq!(op["security"], json!([{"api_key": []}]), "{name} needs a key");
                assert!(responses.contains_key("401"), "{name} documents 401");
                let envelope = if path.starts_with("/v1/webhooks/") { "KayleErrorAnswer" } else { "Error" };
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"],
                    format!("#/components/schemas/{envelope}"),
                    "{name}"
                );
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{name} documents 404");
            }
            if path.starts_with("/apps/") {
                assert_eq!(op["security"], json!([{"api_key": []}]), "{name} needs a key");
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/AppWebhooksError",
                    "{name}: the dialect's own error envelope"
                );
            }
        }
    }
    // Every error code the server can answer with is in the error schema.
    let codes = &doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"];
    for code in ["parameter_missing", "resource_missing", "api_key_invalid", "idempotency_key_in_use"] {
        assert!(codes.as_array().unwrap().iter().any(|c| c == code), "{code} in {codes}");
    }
    // Every $ref points at a schema the document has.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref to {name}");
    }
}

/// Both directions, against the running server: every documented operation is routed (its
/// answer is never "no such route" or "wrong method"), and every method the document
/// does not list for a path is answered 405.
#[test]
fn the_server_answers_exactly_the_documented_operations() {
    let server = TestServer::start();
    let doc = document(&server);
    let ops = operations(&doc);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in paths {
        let url = concrete(path);
        for method in METHODS {
            let documented = ops.contains(&format!("{method} {path}"));
            let dialect = path.starts_with("/apps/") || path.starts_with("/v1/webhooks/");
            let req = if path.starts_with("/v1/") || dialect {
                server.req(method, &url)
            } else {
                Req::new(method, format!("{}{url}", server.base))
            };
            let resp = if method == "POST" || method == "PUT" || method == "PATCH" {
                req.json(&json!({})).send()
            } else {
                req.send()
            };
            let code = resp.body["error"]["code"].as_str().unwrap_or("").to_ascii_lowercase();
            if documented {
                assert!(
                    code != "route_not_found" && code != "method_not_allowed",
                    "{method} {url} is documented but not routed: {}",
                    resp.text
                );
            } else {
                if dialect {
                    assert_eq!((resp.status, code.as_str()), (405, "method_not_allowed"), "{}", resp.text);
                    assert!(resp.body["success"] == false || resp.body["data"].is_null(), "{}", resp.text);
                } else {
                    resp.assert_error(405, "invalid_request_error", "method_not_allowed");
                }
                let allow = resp.header("allow").unwrap_or_default();
                let mut expected: Vec<&str> =
                    (ops.iter()).filter_map(|op| op.strip_suffix(&format!(" {path}"))).collect();
                let mut listed: Vec<&str> = allow.split(", ").collect();
                expected.sort_unstable();
                listed.sort_unstable();
                assert_eq!(listed, expected, "Allow on {method} {url}");
            }
        }
    }
}
