//! Transformations: an endpoint's JavaScript changes the body, URL, method and headers of
//! its requests (signed over the new body), or cancels them; one that loops or allocates
//! without end is stopped, its attempt recorded as failed, and nothing else is touched. On
//! the backend the suite runs on, across a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::{TestServer, eventually};

const WAIT: Duration = Duration::from_secs(20);

/// The code of the first test: everything a handler may change.
const RESHAPE: &str = r#"
function handler(webhook) {
    const amount = webhook.payload.data.amount;
    webhook.payload = { kind: webhook.eventType, cents: amount * 100, id: webhook.payload.id };
    webhook.url = webhook.url.replace("/original", "/moved") + "?v=2";
    webhook.method = "PUT";
    webhook.headers["x-kind"] = webhook.eventType;
    return webhook;
}"#;

fn create(server: &TestServer, url: &str, code: &str) -> Value {
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": url, "enabled_events": ["*"], "headers": {"x-team": "blue"}, "transformation": {"code": code}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    created.body
}

#[test]
fn a_transformation_changes_the_body_url_method_and_a_header_and_the_new_body_is_signed() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let created = create(&server, &receiver.url("/original"), RESHAPE);
    let (endpoint, secret) = (created["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap());
    let shown = &created["transformation"];
    assert_eq!((&shown["code"], &shown["enabled"], &shown["version"]), (&json!(RESHAPE), &json!(true), &json!(1)));
    assert!(shown["updated_by"].as_str().unwrap().starts_with("vk_test_"), "{shown}");

    let event = server.publish("verification_session.verified", json!({"amount": 12}));
    let got = receiver.wait_for("/moved", 1, WAIT);
    let request = &got[0];
    assert_eq!((request.method.as_str(), request.query.as_str()), ("PUT", "v=2"));
    assert_eq!(request.json(), json!({"kind": "verification_session.verified", "cents": 1200, "id": event["id"]}));
    assert_eq!((request.header("x-kind"), request.header("x-team")), ("verification_session.verified", "blue"));
    // The receiver checks the signatures over the body it got, with its own code and the
    // Standard Webhooks libraries.
    assert_eq!(request.stile_signature_valid(secret), (true, 1));
    assert_eq!(request.standard_signature_valid(secret), (true, 1));
    request.verify_with_libraries(secret).unwrap();
    assert_eq!(receiver.count("/original"), 0, "nothing went to the endpoint's own URL");

    // The attempt records the request as sent.
    server.wait_queue_empty(WAIT);
    let attempt = &server.deliveries(&endpoint)[0];
    let detail =
        server.get(&format!("/v1/webhook_endpoints/{endpoint}/deliveries/{}", attempt["id"].as_str().unwrap()));
    let sent = &detail.body["request"];
    assert_eq!((&sent["method"], &sent["transformation_version"]), (&json!("PUT"), &json!(1)), "{sent}");
    assert_eq!(sent["url"], json!(receiver.url("/moved") + "?v=2"));
    assert_eq!(sent["body"].as_str().unwrap().as_bytes(), request.body.as_slice(), "byte for byte");
    assert_eq!(sent["headers"]["x-kind"], "verification_session.verified");

    // A change is a new version, kept across a restart with the one before.
    let server = server.restart();
    let renamed = RESHAPE.replace("x-kind", "x-type");
    let updated =
        server.post(&format!("/v1/webhook_endpoints/{endpoint}"), json!({"transformation": {"code": renamed}}));
    assert_eq!((updated.status, &updated.body["transformation"]["version"]), (200, &json!(2)), "{}", updated.text);
    let versions = server.get(&format!("/v1/webhook_endpoints/{endpoint}/transformation/versions")).body;
    let listed: Vec<_> =
        versions["data"].as_array().unwrap().iter().map(|v| (v["version"].clone(), v["current"].clone())).collect();
    assert_eq!(listed, [(json!(2), json!(true)), (json!(1), json!(false))]);
    assert_eq!(versions["data"][1]["code"], RESHAPE);
    server.publish("verification_session.verified", json!({"amount": 1}));
    let got = receiver.wait_for("/moved", 2, WAIT);
    assert_eq!(got[1].header("x-type"), "verification_session.verified");

    // Disabled, it stays with its versions and the event goes as published.
    let off = server.post(
        &format!("/v1/webhook_endpoints/{endpoint}"),
        json!({"transformation": {"code": renamed, "enabled": false}}),
    );
    assert_eq!(
        (&off.body["transformation"]["version"], &off.body["transformation"]["enabled"]),
        (&json!(3), &json!(false))
    );
    server.publish("verification_session.verified", json!({"amount": 2}));
    let got = receiver.wait_for("/original", 1, WAIT);
    assert_eq!((got[0].method.as_str(), got[0].json()["data"]["amount"].clone()), ("POST", json!(2)));
    assert_eq!(got[0].stile_signature_valid(secret), (true, 1));
    // Removed, its versions go with it.
    let removed = server.post(&format!("/v1/webhook_endpoints/{endpoint}"), json!({"transformation": null}));
    assert_eq!((removed.status, &removed.body["transformation"]), (200, &Value::Null));
    let versions = server.get(&format!("/v1/webhook_endpoints/{endpoint}/transformation/versions")).body;
    assert_eq!(versions["data"], json!([]));
}

#[test]
fn a_transformation_that_cancels_sends_nothing_and_the_delivery_ends_there() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let code = "function handler(w) { w.cancel = w.payload.data.amount < 10; return w; }";
    let endpoint = create(&server, &receiver.url("/big"), code)["id"].as_str().unwrap().to_string();
    server.publish("verification_session.verified", json!({"amount": 5}));
    server.publish("verification_session.verified", json!({"amount": 50}));
    let got = receiver.wait_for("/big", 1, WAIT);
    assert_eq!(got[0].json()["data"]["amount"], 50);
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/big"), 1);
    let attempts = server.deliveries(&endpoint);
    assert_eq!(attempts.len(), 2, "one attempt each, no retry of the cancelled one: {attempts:?}");
    let cancelled = attempts.iter().find(|a| a["status"] == "failed").unwrap_or_else(|| panic!("{attempts:?}"));
    assert!(cancelled["error"].as_str().unwrap().starts_with("cancelled by the endpoint's transformation (version 1)"));
    assert_eq!(cancelled["response_status"], Value::Null);
    let shown = server.get(&format!("/v1/webhook_endpoints/{endpoint}")).body;
    assert_eq!(shown["health"], "healthy", "a cancel is not the receiver's failure");
}

#[test]
fn an_endpoints_credentials_never_follow_a_transformed_url_to_another_host() {
    let server = TestServer::start();
    let (own, other) = (Receiver::start(), Receiver::start());
    let code = format!("function handler(w) {{ w.url = {:?}; return w; }}", other.url("/elsewhere"));
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({
            "url": own.url("/hooks"), "enabled_events": ["*"],
            "authentication": {"type": "bearer", "token": "only-for-own"},
            "transformation": {"code": code},
        }),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let endpoint = created.body["id"].as_str().unwrap().to_string();
    server.publish("verification_session.verified", json!({"amount": 1}));
    server.wait_queue_empty(WAIT);
    assert_eq!((own.count("/hooks"), other.count("/elsewhere")), (0, 0));
    let attempts = server.deliveries(&endpoint);
    let error = attempts[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("another host than the endpoint's"), "{error}");
    // The same host is fine: the credential goes with the request it was meant for.
    let same_host = format!("function handler(w) {{ w.url = {:?}; return w; }}", own.url("/moved"));
    let updated =
        server.post(&format!("/v1/webhook_endpoints/{endpoint}"), json!({"transformation": {"code": same_host}}));
    assert_eq!(updated.status, 200, "{}", updated.text);
    server.publish("verification_session.verified", json!({"amount": 2}));
    let got = own.wait_for("/moved", 1, WAIT);
    assert_eq!(got[0].header("authorization"), "Bearer only-for-own");
    assert_eq!(other.count("/elsewhere"), 0);
}

#[test]
fn what_a_handler_makes_is_checked_as_the_api_checks_an_endpoint_and_refused_requests_are_not_sent() {
    let server = TestServer::start();
    let receiver = Receiver::start();
    let cases = [
        ("w.url = 'http://169.254.169.254/latest/meta-data';", "gave a URL stile does not send to"),
        ("w.headers['Webhook-Signature'] = 'v1,forged';", "gave a header stile does not send"),
        ("w.headers['x-a'] = '1'; w.headers['X-A'] = '2';", "twice"),
    ];
    let mut endpoints = Vec::new();
    for (change, _) in &cases {
        let code = format!("function handler(w) {{ {change} return w; }}");
        endpoints.push(create(&server, &receiver.url("/checked"), &code)["id"].as_str().unwrap().to_string());
    }
    server.publish("verification_session.verified", json!({"amount": 1}));
    server.wait_queue_empty(WAIT);
    assert_eq!(receiver.count("/checked"), 0, "nothing was sent");
    for (endpoint, (_, says)) in endpoints.iter().zip(cases) {
        let attempts = server.deliveries(endpoint);
        let error = attempts[0]["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("not sent: the endpoint's transformation (version 1)") && error.contains(says),
            "{error}"
        );
        assert_eq!(server.get(&format!("/v1/webhook_endpoints/{endpoint}")).body["health"], "healthy");
    }
    // A try says so too, and still shows what the handler made.
    let tried = server.post(
        "/v1/transformations/test",
        json!({"code": format!("function handler(w) {{ {} return w; }}", cases[0].0), "event": {"type": "a.b"}}),
    );
    assert_eq!(tried.status, 200, "{}", tried.text);
    let error = tried.body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("gave a URL stile does not send to") && error.contains("a delivery would send nothing"),
        "{error}"
    );
    assert_eq!(tried.body["url"], "http://169.254.169.254/latest/meta-data");
}

#[test]
fn endless_loops_and_allocations_are_stopped_and_recorded_and_the_rest_goes_on() {
    let server = TestServer::start_with(|config| {
        config.transformations.time_limit = Duration::from_millis(200);
        config.transformations.memory_limit_mb = 16;
    });
    let receiver = Receiver::start();
    let looping = create(&server, &receiver.url("/loop"), "function handler(w) { for (;;) {} }");
    let hungry = create(
        &server,
        &receiver.url("/hungry"),
        // A MiB a step in 1,024 copies of a KiB: 'x'.repeat(1 << 20) writes a character at
        // a time, and sixteen of those could outlast the time limit on a loaded machine,
        // so the deadline, not the memory limit, would stop it.
        "function handler(w) { const kib = 'x'.repeat(1 << 10); const kept = []; for (;;) { kept.push(kib.repeat(1 << 10) + kept.length); } }",
    );
    let plain = server.create_endpoint(&receiver.url("/plain"));
    for n in 0..2 {
        server.publish("verification_session.verified", json!({"amount": n}));
    }
    receiver.wait_for("/plain", 2, WAIT);
    server.wait_queue_empty(WAIT);
    assert_eq!((receiver.count("/loop"), receiver.count("/hungry")), (0, 0));
    for (endpoint, says) in [(&looping, "stopped after 200 ms"), (&hungry, "more than the 16 MiB")] {
        let id = endpoint["id"].as_str().unwrap();
        let attempts = server.deliveries(id);
        // Two events, each tried as the retry schedule says (four times) and then failed.
        assert_eq!(attempts.len(), 8, "{attempts:?}");
        for attempt in &attempts {
            let error = attempt["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with("not sent: the endpoint's transformation (version 1) failed") && error.contains(says),
                "{error}"
            );
        }
        let shown = server.get(&format!("/v1/webhook_endpoints/{id}")).body;
        assert_eq!((&shown["status"], &shown["health"]), (&json!("enabled"), &json!("healthy")), "{shown}");
    }
    assert_eq!(server.deliveries(plain["id"].as_str().unwrap()).len(), 2);
    assert_eq!(server.get("/healthz").status, 200);
    // The server still compiles and runs a good one at once.
    let tried = server.post(
        "/v1/transformations/test",
        json!({"code": "function handler(w) { w.payload = {n: w.payload.data.amount}; return w; }", "event": {"type": "t", "data": {"amount": 3}}}),
    );
    assert_eq!((tried.status, &tried.body["payload"]), (200, &json!({"n": 3})), "{}", tried.text);
}

#[test]
fn a_bad_transformation_is_a_400_and_a_try_shows_what_it_makes() {
    let server = TestServer::start();
    let create = |code: &str| {
        server.post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/x", "enabled_events": ["*"], "transformation": {"code": code}}),
        )
    };
    for (code, says) in [
        ("function handler(w) { return w", "SyntaxError"),
        ("function handle(w) { return w; }", "declares no function `handler(webhook)`"),
        ("for (;;) {}", "stopped after"),
        ("  ", "must not be empty"),
    ] {
        let resp = create(code);
        let error = resp.assert_error(400, "invalid_request_error", "parameter_invalid");
        assert!(error["param"].as_str().unwrap().starts_with("transformation"), "{error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{code}: {error}");
    }
    let too_long = create(&"x".repeat(16 * 1024 + 1));
    assert_eq!(
        too_long.assert_error(400, "invalid_request_error", "parameter_invalid")["param"],
        "transformation.code"
    );
    assert_eq!(server.get("/v1/webhook_endpoints").body["data"], json!([]), "nothing was stored");
    let operational = server.post(
        "/v1/operational_webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/ops", "enabled_events": ["*"], "transformation": {"code": "function handler(w) { return w; }"}}),
    );
    assert_eq!(operational.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "transformation");

    let empty = server.post("/v1/transformations/test", json!({"code": " ", "event": {"type": "a.b"}}));
    assert_eq!(empty.assert_error(400, "invalid_request_error", "parameter_invalid")["param"], "code");

    // Tried on a catalogue example: the request it would make, or why none.
    let tried = server.post(
        "/v1/transformations/test",
        json!({
            "code": "function handler(w) { w.headers['x-type'] = w.eventType; w.url += '/v2'; return w; }",
            "event_type": "verification_session.verified",
            "url": "https://example.com/hooks",
        }),
    );
    assert_eq!(tried.status, 200, "{}", tried.text);
    assert_eq!((&tried.body["url"], &tried.body["method"]), (&json!("https://example.com/hooks/v2"), &json!("POST")));
    assert_eq!(tried.body["headers"]["x-type"], "verification_session.verified");
    assert_eq!(tried.body["payload"]["type"], "verification_session.verified");
    let threw = server.post(
        "/v1/transformations/test",
        json!({"code": "function handler(w) { throw new Error('no ' + w.eventType); }", "event": {"type": "a.b"}}),
    );
    assert_eq!(
        (threw.status, &threw.body["error"]),
        (200, &json!("the handler threw: Error: no a.b")),
        "{}",
        threw.text
    );
    let cancelled = server.post(
        "/v1/transformations/test",
        json!({"code": "function handler(w) { w.cancel = true; return w; }", "event": {"type": "a.b"}}),
    );
    assert_eq!((&cancelled.body["cancel"], &cancelled.body["payload"]), (&json!(true), &Value::Null));
    assert!(eventually(WAIT, || server.get("/healthz").status == 200));
}
