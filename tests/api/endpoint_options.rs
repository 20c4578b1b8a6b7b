//! Endpoint options seen from a real receiver: an endpoint's own headers on every
//! delivery and test ping, the headers it may not set, and what an update and a restart
//! keep. One process here (redb, or Postgres with `STILE_TEST_BACKEND=postgres`).

use std::time::Duration;

use serde_json::json;

use crate::common::TestServer;
use crate::common::receiver::Receiver;

#[test]
fn an_endpoints_own_headers_reach_the_receiver_on_deliveries_and_pings_and_outlive_a_restart() {
    let receiver = Receiver::start();
    let server = TestServer::start();
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": receiver.url("/hook"), "enabled_events": ["*"],
               "headers": {"X-Team": "payments", "x-api-version": "2026-12-01"}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["headers"], json!({"X-Team": "payments", "x-api-version": "2026-12-01"}));
    let id = created.body["id"].as_str().unwrap().to_string();
    let secret = created.body["secret"].as_str().unwrap().to_string();

    server.publish("verification_session.created", json!({"id": "vks_1"}));
    let received = receiver.wait_for("/hook", 1, Duration::from_secs(10));
    assert_eq!(received[0].header("x-team"), "payments");
    assert_eq!(received[0].header("x-api-version"), "2026-12-01");
    assert!(received[0].stile_signature_valid(&secret).0, "stile's own headers still sign the body");
    assert_eq!(received[0].header("content-type"), "application/json");

    // A test ping carries them too, and the attempt shows what was sent.
    let ping = server.post(&format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    assert_eq!(ping.status, 200, "{}", ping.text);
    let received = receiver.wait_for("/hook", 2, Duration::from_secs(10));
    assert_eq!(received[1].header("x-team"), "payments");
    let detail = server.get(&format!("/v1/webhook_endpoints/{id}/deliveries/{}", ping.body["id"].as_str().unwrap()));
    assert_eq!(detail.body["request"]["headers"]["X-Team"], "payments", "{}", detail.body);

    // Kept by a restart; an update replaces them whole, and `{}` removes them.
    let server = server.restart();
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["headers"]["X-Team"], "payments");
    let updated = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": {"X-Region": "eu"}}));
    assert_eq!(updated.body["headers"], json!({"X-Region": "eu"}), "{}", updated.text);
    server.publish("verification_session.created", json!({"id": "vks_2"}));
    let received = receiver.wait_for("/hook", 3, Duration::from_secs(10));
    assert_eq!((received[2].header("x-region"), received[2].header("x-team")), ("eu", ""));
    let cleared = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": null}));
    assert_eq!(cleared.body["headers"], json!({}), "{}", cleared.text);
}

#[test]
fn headers_stile_sets_or_http_forbids_get_a_400_naming_the_header() {
    let server = TestServer::start();
    let create = |headers: serde_json::Value| {
        server.post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "headers": headers}),
        )
    };
    for name in [
        "Content-Type",
        "user-agent",
        "Stile-Signature",
        "webhook-id",
        "Webhook-Signature",
        "webhook-anything",
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "Proxy-Authorization",
    ] {
        let resp = create(json!({ name: "x" }));
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert_eq!(error["param"], "headers", "{error}");
        assert!(error["message"].as_str().unwrap().contains(name), "{name}: {error}");
    }
    let too_many: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    for (headers, says) in [
        (json!({"x bad": "v"}), "x bad"),
        (json!({"x-line": "a\r\nx-injected: 1"}), "x-line"),
        (json!({"x-long": "v".repeat(4097)}), "x-long"),
        (json!({"X-Dup": "a", "x-dup": "b"}), "named twice"),
        (serde_json::Value::Object(too_many), "at most 20"),
    ] {
        let resp = create(headers.clone());
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert!(error["message"].as_str().unwrap().contains(says), "{headers}: {error}");
    }
    let resp = create(json!({"x-number": 5}));
    assert_eq!(resp.status, 400, "a value that is not a string: {}", resp.text);
    // Nothing was stored by any of them.
    assert_eq!(server.get("/v1/webhook_endpoints").body["data"], json!([]));
    // An update is checked the same way.
    let id = create(json!({"x-ok": "1"})).body["id"].as_str().unwrap().to_string();
    let resp = server.post(&format!("/v1/webhook_endpoints/{id}"), json!({"headers": {"webhook-id": "x"}}));
    resp.assert_error(400, "invalid_request_error", "parameter_invalid");
    assert_eq!(server.get(&format!("/v1/webhook_endpoints/{id}")).body["headers"], json!({"x-ok": "1"}));
}
