//! Requests that are not valid HTTP/1.1, or too large to be read, are refused with the
//! JSON error of the API they were sent to (the Stile API's when no route can be told),
//! never with an empty body; what came before them on the connection is answered first.

use std::time::Duration;

use crate::common::raw::RawConn;
use crate::common::{TEST_KEY, TestServer};

/// How long an answer may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(10);

/// Sends `request` on a new connection; returns the answer, checking that nothing follows
/// it and that the connection is closed.
fn refused(server: &TestServer, request: &[u8]) -> crate::common::raw::RawResponse {
    let mut conn = RawConn::open(&server.base);
    conn.send(request);
    let answer = conn.response(WAIT).expect("an answer");
    conn.closes_within(WAIT).expect("closed after the refusal");
    answer
}

#[test]
fn a_100_kb_request_line_is_414_json() {
    let server = TestServer::start();
    let long = "a".repeat(100 * 1024);
    let request =
        format!("GET /v1/webhook_endpoints?q={long} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\r\n");
    let answer = refused(&server, request.as_bytes());
    let error = answer.assert_error(414, "invalid_request_error", "uri_too_long");
    assert!(error["message"].as_str().unwrap().contains("8 KiB"), "{error}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn headers_over_32_kib_or_over_96_are_431_json() {
    let server = TestServer::start();
    let big = "x".repeat(40 * 1024);
    let request = format!("GET /v1/webhook_endpoints HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let error = refused(&server, request.as_bytes()).assert_error(431, "invalid_request_error", "headers_too_large");
    assert!(error["message"].as_str().unwrap().contains("32 KiB"), "{error}");

    // Past actix's own limit too (128 KiB), and sent before the server answers.
    let huge = "x".repeat(200 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n");
    refused(&server, request.as_bytes()).assert_error(431, "invalid_request_error", "headers_too_large");

    let many: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    refused(&server, request.as_bytes()).assert_error(431, "invalid_request_error", "headers_too_large");

    // Just under the limit is served.
    let mut conn = RawConn::open(&server.base);
    let fits = "x".repeat(30 * 1024);
    conn.send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {fits}\r\n\r\n").as_bytes());
    assert_eq!(conn.response(WAIT).expect("an answer").status, 200);
}

#[test]
fn transfer_encoding_with_content_length_is_400_json_in_each_apis_envelope() {
    let server = TestServer::start();
    let smuggle = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
    };
    let error =
        refused(&server, smuggle("/v1/events").as_bytes()).assert_error(400, "invalid_request_error", "bad_request");
    assert!(error["message"].as_str().unwrap().contains("Transfer-Encoding"), "{error}");

    let kayle = refused(&server, smuggle("/v1/webhooks/endpoints").as_bytes());
    assert_eq!(kayle.status, 400);
    let body = kayle.json();
    assert_eq!(body["data"], serde_json::Value::Null, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");

    let apps = refused(&server, smuggle("/apps/acme/webhooks").as_bytes());
    assert_eq!(apps.status, 400);
    let body = apps.json();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");

    // Outside every API (the dashboard's paths), and with no path to tell: the Stile API's.
    refused(&server, smuggle("/").as_bytes()).assert_error(400, "invalid_request_error", "bad_request");
    refused(&server, b"NOT HTTP AT ALL\r\n\r\n").assert_error(400, "invalid_request_error", "bad_request");
    refused(&server, b"GET /healthz HTTP/1.1\r\n\r\n").assert_error(400, "invalid_request_error", "bad_request");
}

#[test]
fn a_malformed_chunked_body_is_answered_once_in_json() {
    let server = TestServer::start();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    // The handler reading the body answers; nothing else (no second, empty 400) follows.
    refused(&server, request.as_bytes()).assert_error(400, "invalid_request_error", "bad_request");
}

#[test]
fn pipelined_requests_before_a_refused_one_are_answered_first() {
    let server = TestServer::start();
    let body = r#"{"type": "verification_session.created", "data": {}}"#;
    let publish = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let pipeline = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{publish}{publish}GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let mut conn = RawConn::open(&server.base);
    conn.send(pipeline.as_bytes());
    for expected in [200, 200, 200] {
        let answer = conn.response(WAIT).expect("an answer");
        assert_eq!(answer.status, expected, "{answer:?}");
        assert!(!answer.body.is_empty());
    }
    conn.response(WAIT).expect("the refusal").assert_error(400, "invalid_request_error", "bad_request");
    conn.closes_within(WAIT).expect("closed after the refusal");
    assert_eq!(server.get("/v1/events?limit=10").body["data"].as_array().unwrap().len(), 2);
}
