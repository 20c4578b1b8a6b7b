//! Bad input of every shape gets a JSON 4xx, never a 5xx or a dropped server; slow and
//! oversized requests are cut off; secrets stay out of logs; security headers are sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::process::ServerProcess;
use crate::common::{Req, TEST_KEY, TestServer};

/// Any JSON value, nested a few levels, with keys that are often real parameter names.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("url".to_string()),
        Just("enabled_events".to_string()),
        Just("description".to_string()),
        Just("metadata".to_string()),
        Just("status".to_string()),
        Just("type".to_string()),
        Just("data".to_string()),
        Just("endpoint".to_string()),
        Just("expires_in".to_string()),
        "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        Just(Value::from("https://example.com/hook")),
        Just(Value::from("http://localhost:3000/webhooks")),
        Just(Value::from("verification_session.verified")),
        Just(Value::from("*")),
        Just(Value::from("a\u{0}b")),
        Just(Value::from("24h")),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Asserts an answer is a well-formed success or a JSON 4xx error.
fn assert_sane(resp: &crate::common::Resp, what: &str) {
    assert!(resp.status < 500, "{what}: {} {}", resp.status, resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"), "{what}: {}", resp.text);
    if resp.status >= 400 {
        let error = &resp.body["error"];
        assert!(
            error["type"].is_string() && error["code"].is_string() && error["message"].is_string(),
            "{what}: {}",
            resp.text
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_json_body_on_any_post_route_is_answered_sanely(body in any_json(), route in 0usize..6) {
        thread_local! {
            static SERVER: (TestServer, String, String) = {
                let server = TestServer::start();
                let endpoint = server.create_endpoint("http://127.0.0.1:9/unreachable")["id"].as_str().unwrap().to_string();
                let event = server.publish("verification_session.created", json!({}))["id"].as_str().unwrap().to_string();
                (server, endpoint, event)
            };
        }
        SERVER.with(|(server, endpoint, event)| {
            let path = match route {
                0 => "/v1/webhook_endpoints".to_string(),
                1 => format!("/v1/webhook_endpoints/{endpoint}"),
                2 => format!("/v1/webhook_endpoints/{endpoint}/rotate_secret"),
                3 => "/v1/events".to_string(),
                4 => format!("/v1/events/{event}/resend"),
                _ => format!("/v1/webhook_endpoints/{endpoint}/test"),
            };
            let resp = server.post(&path, body.clone());
            assert_sane(&resp, &format!("POST {path} {body}"));
        });
    }

    #[test]
    fn any_bytes_as_a_json_body_are_answered_sanely(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        thread_local! { static SERVER: TestServer = TestServer::start(); }
        SERVER.with(|server| {
            let resp = server.req("POST", "/v1/webhook_endpoints").raw(bytes.clone(), "application/json").send();
            assert_sane(&resp, "raw bytes");
            assert!(resp.status == 400, "{}", resp.text);
        });
    }

    #[test]
    fn any_query_string_on_any_list_route_is_answered_sanely(
        query in prop::collection::vec(("\\PC{0,16}", "\\PC{0,16}"), 0..5),
        route in 0usize..3,
    ) {
        thread_local! {
            static SERVER: (TestServer, String) = {
                let server = TestServer::start();
                let endpoint = server.create_endpoint("http://127.0.0.1:9/unreachable")["id"].as_str().unwrap().to_string();
                (server, endpoint)
            };
        }
        SERVER.with(|(server, endpoint)| {
            let encoded: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
            let path = match route {
                0 => format!("/v1/webhook_endpoints?{encoded}"),
                1 => format!("/v1/events?{encoded}"),
                _ => format!("/v1/webhook_endpoints/{endpoint}/deliveries?{encoded}"),
            };
            let resp = server.get(&path);
            assert_sane(&resp, &path);
        });
    }

    #[test]
    fn the_signature_verifier_never_panics(header in "\\PC{0,120}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = stile::webhook::verify(&body, &header, "whsec_test", Duration::from_secs(300));
    }
}

#[test]
fn edge_case_bodies_are_4xx_not_5xx() {
    let server = TestServer::start();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge number", br#"{"url": 1e400, "enabled_events": ["*"]}"#.to_vec()),
        (
            "huge integer",
            br#"{"type": "verification_session.created", "data": {"n": 123456789012345678901234567890}}"#.to_vec(),
        ),
        ("duplicate keys", br#"{"url": "https://a.example", "url": 5, "enabled_events": ["*"]}"#.to_vec()),
        ("NUL in a string", b"{\"url\": \"https://a.example/\\u0000\", \"enabled_events\": [\"*\"]}".to_vec()),
        ("raw NUL byte", b"{\"url\": \"https://a.example/\0\"}".to_vec()),
        ("deep nesting", format!("{{\"data\": {}{}}}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("lone surrogate", br#"{"description": "\ud800"}"#.to_vec()),
        ("BOM", b"\xef\xbb\xbf{}".to_vec()),
    ];
    for (name, body) in cases {
        for path in ["/v1/webhook_endpoints", "/v1/events"] {
            let resp = server.req("POST", path).raw(body.clone(), "application/json").send();
            assert_sane(&resp, name);
            assert!(resp.status >= 400 || name == "huge integer", "{name} on {path}: {}", resp.text);
        }
    }
    // A huge integer in event data is kept as a number (no precision panic), not refused.
    let resp = server
        .req("POST", "/v1/events")
        .raw(
            br#"{"type": "verification_session.created", "data": {"n": 123456789012345678901234567890}}"#.to_vec(),
            "application/json",
        )
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[test]
fn a_slow_loris_request_is_cut_off() {
    // Long enough that ordinary requests on a busy 2-core CI machine never hit it.
    let server = TestServer::start_with(|c| c.server.request_timeout = Duration::from_secs(2));
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Never finish the head; the server must give up on us.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(8), "cut off after {waited:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // Everyone else is still served.
    assert_eq!(server.get("/v1/webhook_endpoints").status, 200);
}

#[test]
fn oversized_headers_are_refused_without_harm() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let huge = "x".repeat(128 * 1024);
    let request = format!("GET /v1/webhook_endpoints HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 400"), "{text}");
    let many: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.1 5"), "{text}");
    assert_eq!(server.get("/v1/webhook_endpoints").status, 200);
}

#[test]
fn every_answer_carries_security_headers() {
    let server = TestServer::start();
    for resp in [
        server.get("/v1/webhook_endpoints"),
        server.req("GET", "/v1/webhook_endpoints").no_key().send(),
        server.get("/v1/nothing"),
        Req::new("GET", format!("{}/", server.base)).send(),
    ] {
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{:?}", resp.headers);
        assert_eq!(resp.header("x-frame-options"), Some("DENY"));
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
    }
    assert_eq!(server.get("/v1/webhook_endpoints").header("cache-control"), Some("no-store"));
}

#[test]
fn secrets_and_keys_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = crate::common::receiver::Receiver::start();
    let env = [("STILE_AUTH_KEYS", TEST_KEY), ("RUST_LOG", "trace")];
    let server = ServerProcess::start(dir.path(), &["--listen", "127.0.0.1:0", "--data-dir", "data"], &env).unwrap();
    let call = |method: &str, path: &str, body: Value| {
        Req::new(method, format!("{}{path}", server.base)).key(TEST_KEY).json(&body).send()
    };
    let created = call("POST", "/v1/webhook_endpoints", json!({"url": receiver.url("/h"), "enabled_events": ["*"]}));
    let id = created.body["id"].as_str().unwrap();
    let rotated = call("POST", &format!("/v1/webhook_endpoints/{id}/rotate_secret"), json!({"expires_in": "1h"}));
    call("POST", "/v1/events", json!({"type": "verification_session.created", "data": {"id": "vks_1"}}));
    call("POST", &format!("/v1/webhook_endpoints/{id}/test"), json!({}));
    Req::new("GET", format!("{}/v1/webhook_endpoints", server.base)).key("vk_test_wrong_key_attempt_123456").send();
    receiver.wait_for("/h", 2, Duration::from_secs(10));
    // Every request above is logged once it is answered: wait for the last one's line.
    let mut all = Vec::new();
    let logged = crate::common::eventually(Duration::from_secs(10), || {
        all.extend(server.stderr_so_far());
        // The line is coloured: `status` and `401` are apart.
        all.iter().any(|l| l.contains("stile::api") && l.contains("GET") && l.contains("401"))
    });
    assert!(logged, "the refused request is logged ({} lines so far)", all.len());
    let logs = all.join("\n");
    assert!(logs.contains("delivery attempt") || logs.contains("request"), "trace logging is on: {logs}");
    for secret in [
        TEST_KEY,
        created.body["secret"].as_str().unwrap(),
        rotated.body["secret"].as_str().unwrap(),
        "vk_test_wrong_key_attempt_123456",
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    assert!(!logs.contains("whsec_"), "no signing secret in any form");
}
