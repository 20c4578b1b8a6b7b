//! Every failure answers with the JSON error object and the right status.

use serde_json::json;

use crate::common::{Req, TestServer};

#[test]
fn malformed_json_is_400_invalid_json() {
    let server = TestServer::start();
    let resp = server.req("POST", "/v1/webhook_endpoints").raw("{\"url\": ", "application/json").send();
    resp.assert_error(400, "invalid_request_error", "invalid_json");
    let resp = server.req("POST", "/v1/webhook_endpoints").raw("[]", "application/json").send();
    resp.assert_error(400, "invalid_request_error", "invalid_json");
    let resp =
        server.req("POST", "/v1/webhook_endpoints").raw(b"{\"url\":\"\xff\"}".to_vec(), "application/json").send();
    resp.assert_error(400, "invalid_request_error", "invalid_json");
}

#[test]
fn a_form_body_is_415() {
    let server = TestServer::start();
    let resp = server
        .req("POST", "/v1/webhook_endpoints")
        .raw("url=https://example.com&enabled_events[]=*", "application/x-www-form-urlencoded")
        .send();
    resp.assert_error(415, "invalid_request_error", "unsupported_media_type");
}

#[test]
fn json_is_read_with_no_content_type_or_any_json_type_and_refused_with_another() {
    let server = TestServer::start();
    let endpoint = json!({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]}).to_string();
    let create = |req: Req| req.send();
    // No Content-Type at all: the body is read as JSON.
    let untyped = create(server.req("POST", "/v1/webhook_endpoints").untyped(endpoint.clone()));
    assert_eq!(untyped.status, 200, "{}", untyped.text);
    for json_type in ["application/json", "application/json; charset=utf-8", "application/vnd.acme+json"] {
        let resp = create(server.req("POST", "/v1/webhook_endpoints").raw(endpoint.clone(), json_type));
        assert_eq!(resp.status, 200, "{json_type}: {}", resp.text);
    }
    // The type meant for PATCH, on the routes that take PATCH.
    server.post("/v1/event_types", json!({"name": "order.paid", "description": "An order was paid."}));
    let patched = server
        .req("PATCH", "/v1/event_types/order.paid")
        .raw(json!({"description": "Paid in full."}).to_string(), "application/merge-patch+json")
        .send();
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["description"], "Paid in full.");
    // Any other type is refused, even with a JSON body.
    for other in ["text/plain", "text/json", "application/x-www-form-urlencoded", "application/octet-stream"] {
        let resp = create(server.req("POST", "/v1/webhook_endpoints").raw(endpoint.clone(), other));
        let error = resp.assert_error(415, "invalid_request_error", "unsupported_media_type");
        assert!(error["message"].as_str().unwrap().contains(other), "{other}: {}", resp.text);
    }
    // An empty body is `{}` whatever its type (here: the required `name` is missing).
    let empty = server.req("POST", "/v1/event_types").raw("", "text/plain").send();
    empty.assert_error(400, "invalid_request_error", "parameter_missing");
}

#[test]
fn unknown_routes_are_404_json_inside_and_outside_the_api() {
    let server = TestServer::start();
    server.get("/v1/nothing_here").assert_error(404, "invalid_request_error", "route_not_found");
    server.get("/v1/webhook_endpoints/we_x/extra/parts").assert_error(404, "invalid_request_error", "route_not_found");
    let outside = Req::new("GET", format!("{}/no/such/page", server.base)).send();
    outside.assert_error(404, "invalid_request_error", "route_not_found");
}

#[test]
fn a_wrong_method_is_405_json() {
    let server = TestServer::start();
    server.req("PUT", "/v1/webhook_endpoints").json(&json!({})).send().assert_error(
        405,
        "invalid_request_error",
        "method_not_allowed",
    );
    server.req("PATCH", "/v1/webhook_endpoints/we_01").json(&json!({})).send().assert_error(
        405,
        "invalid_request_error",
        "method_not_allowed",
    );
    let health = Req::new("POST", format!("{}/healthz", server.base)).send();
    health.assert_error(405, "invalid_request_error", "method_not_allowed");
}

#[test]
fn a_body_over_256_kib_is_413_json_with_or_without_content_length() {
    let server = TestServer::start();
    let big = json!({"url": "https://example.com", "enabled_events": ["*"], "description": "x".repeat(300 * 1024)});
    let resp = server.post("/v1/webhook_endpoints", big);
    resp.assert_error(413, "invalid_request_error", "payload_too_large");
    // Through the idempotency layer, which reads the body itself.
    let resp = server
        .req("POST", "/v1/webhook_endpoints")
        .header("idempotency-key", "big-one")
        .raw(vec![b' '; 10 * 1024 * 1024], "application/json")
        .send();
    resp.assert_error(413, "invalid_request_error", "payload_too_large");
    // The server is still fine afterwards.
    assert_eq!(server.get("/v1/webhook_endpoints").status, 200);
}

#[test]
fn healthz_answers_without_a_key() {
    let server = TestServer::start();
    let resp = Req::new("GET", format!("{}/healthz", server.base)).send();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["status"], "ok");
    assert_eq!(resp.body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_dashboard_page_is_served_at_the_root_with_a_csp() {
    let server = TestServer::start();
    let resp = Req::new("GET", format!("{}/", server.base)).send();
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").unwrap().starts_with("text/html"));
    assert!(resp.text.contains("stile"));
    let csp = resp.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let etag = resp.header("etag").unwrap().to_string();
    let again = Req::new("GET", format!("{}/", server.base)).header("if-none-match", &etag).send();
    assert_eq!(again.status, 304);
}

#[test]
fn metrics_are_prometheus_text_that_follows_what_happened() {
    let server = TestServer::start();
    let receiver = crate::common::receiver::Receiver::start();
    receiver.set("/flaky", crate::common::receiver::Behaviour::FailFirst(1));
    server.create_endpoint(&receiver.url("/flaky"));
    let event = server.publish("verification_session.created", json!({"id": "vks_1"}));
    server.wait_settled(event["id"].as_str().unwrap(), std::time::Duration::from_secs(10));
    let metrics = Req::new("GET", format!("{}/metrics", server.base)).send();
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    let text = &metrics.text;
    for line in [
        "stile_events_published_total 1",
        "stile_delivery_attempts_total{outcome=\"failed\"} 1",
        "stile_delivery_attempts_total{outcome=\"succeeded\"} 1",
        "stile_retries_scheduled_total 1",
        "stile_queue_depth 0",
        "stile_endpoints{state=\"healthy\"} 1",
        "stile_delivery_attempt_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    // The writer committed the publish and the two results, each once, in however many
    // commits it grouped them into (one duration observed per commit).
    assert!(text.lines().any(|l| l == "stile_writer_commit_jobs_sum 3.0"), "{text}");
    let count = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let commits = count("stile_writer_commit_jobs_count ").expect("commits counted");
    assert!(commits != "0", "{text}");
    assert_eq!(count("stile_writer_commit_duration_seconds_count "), Some(commits), "{text}");
    assert!(text.lines().any(|l| l.starts_with("stile_store_bytes ") && !l.ends_with(" 0")), "{text}");
}

#[test]
fn metrics_can_require_a_token() {
    let server = TestServer::start_with(|c| c.server.metrics_token = "scrape-secret".into());
    let url = format!("{}/metrics", server.base);
    Req::new("GET", url.clone()).send().assert_error(401, "authentication_error", "api_key_invalid");
    Req::new("GET", url.clone()).header("authorization", "Bearer wrong").send().assert_error(
        401,
        "authentication_error",
        "api_key_invalid",
    );
    let ok = Req::new("GET", url).header("authorization", "Bearer scrape-secret").send();
    assert_eq!(ok.status, 200);
}
