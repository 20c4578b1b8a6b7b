//! Clients that send slowly or not at all: every request must arrive whole within
//! `server.request_timeout` (head and body, whether or not its route reads the body), and
//! a flood of such clients must neither exhaust the server's file descriptors nor keep
//! `/healthz` from answering.

use std::time::{Duration, Instant};

use crate::common::process::{ServerProcess, stile_bin};
use crate::common::raw::RawConn;
use crate::common::{TEST_KEY, TestServer};

/// The request timeout of these tests' servers: long enough that a request sent at once
/// never meets it on a busy machine, short enough to wait for.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How long past the timeout an answer may take on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(6);

fn server() -> TestServer {
    TestServer::start_with(|c| c.server.request_timeout = TIMEOUT)
}

/// A request head announcing a 1,000-byte body, followed by its first byte only.
fn slow_body(method: &str, path: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    )
    .into_bytes()
}

#[test]
fn a_body_that_never_ends_is_answered_408_json_and_its_connection_closed() {
    let server = server();
    let mut conn = RawConn::open(&server.base);
    let started = Instant::now();
    conn.send(&slow_body("POST", "/v1/events"));
    let answer = conn.response(TIMEOUT + SLACK).expect("an answer before the body ends");
    let waited = started.elapsed();
    assert!(waited >= TIMEOUT - Duration::from_millis(100), "answered after {waited:?}, before the timeout");
    let error = answer.assert_error(408, "invalid_request_error", "request_timeout");
    assert!(error["message"].as_str().unwrap().contains("1s"), "{error}");
    conn.closes_within(SLACK).expect("the connection is closed after the 408");

    // In the envelope of the API the request came to.
    let mut conn = RawConn::open(&server.base);
    conn.send(&slow_body("POST", "/v1/webhooks/endpoints"));
    let answer = conn.response(TIMEOUT + SLACK).expect("an answer before the body ends");
    assert_eq!(answer.status, 408);
    let body = answer.json();
    assert_eq!(body["data"], serde_json::Value::Null, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    conn.closes_within(SLACK).expect("closed");

    // The server is unharmed.
    assert_eq!(server.get("/v1/webhook_endpoints").status, 200);
}

#[test]
fn a_route_that_never_reads_its_body_does_not_hold_the_connection() {
    let server = server();
    // A chunked body that never ends, to a route that takes none: the answer comes at
    // once, and the rest of the body is not waited for past the timeout.
    let mut conn = RawConn::open(&server.base);
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    let answer = conn.response(SLACK).expect("healthz answers without reading the body");
    assert_eq!(answer.status, 200, "{answer:?}");
    conn.closes_within(TIMEOUT + SLACK).expect("the connection is closed once the body is late");

    // The same with a Content-Length.
    let mut conn = RawConn::open(&server.base);
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{");
    let answer = conn.response(SLACK).expect("healthz answers without reading the body");
    assert_eq!(answer.status, 200, "{answer:?}");
    conn.closes_within(TIMEOUT + SLACK).expect("the connection is closed once the body is late");
}

#[test]
fn a_slow_head_is_answered_408_json_on_a_new_or_a_kept_alive_connection() {
    let server = server();
    // Nothing at all.
    let mut conn = RawConn::open(&server.base);
    conn.response(TIMEOUT + SLACK).expect("a silent connection is answered").assert_error(
        408,
        "invalid_request_error",
        "request_timeout",
    );
    conn.closes_within(SLACK).expect("and closed");

    // Half a head.
    let mut conn = RawConn::open(&server.base);
    conn.send(b"GET /v1/webhook_endpoints HTTP/1.1\r\nHost: x\r\n");
    let answer = conn.response(TIMEOUT + SLACK).expect("a half head is answered");
    answer.assert_error(408, "invalid_request_error", "request_timeout");
    conn.closes_within(SLACK).expect("and closed");

    // Half a head after a whole request on the same connection (the head timer of actix
    // covers the first request of a connection only).
    let mut conn = RawConn::open(&server.base);
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response(SLACK).expect("healthz answers").status, 200);
    let started = Instant::now();
    conn.send(b"GET /apps/acme/webhooks HTTP/1.1\r\nHost: x\r\n");
    let answer = conn.response(TIMEOUT + SLACK).expect("the second, slow head is answered");
    assert!(started.elapsed() < TIMEOUT + SLACK);
    assert_eq!(answer.status, 408, "{answer:?}");
    // The path names the app-scoped API: its envelope.
    let body = answer.json();
    assert_eq!((body["success"].as_bool(), body["error"]["code"].as_str()), (Some(false), Some("REQUEST_TIMEOUT")));
    conn.closes_within(SLACK).expect("and closed");
}

#[test]
fn requests_that_arrive_in_time_are_served_however_they_are_split() {
    let server = server();
    let mut conn = RawConn::open(&server.base);
    let body = r#"{"type": "verification_session.created", "data": {"id": "vks_1"}}"#;
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Byte by byte at first, then whole, on one kept-alive connection.
    for (n, byte) in request.as_bytes().iter().enumerate() {
        conn.send(&[*byte]);
        if n % 64 == 0 {
            std::thread::yield_now();
        }
    }
    assert_eq!(conn.response(SLACK).expect("an answer").status, 200);
    for _ in 0..3 {
        conn.send(request.as_bytes());
        assert_eq!(conn.response(SLACK).expect("an answer").status, 200);
    }
    // `Expect: 100-continue`: the body follows the server's go-ahead.
    let head = request.replace("Content-Length", "Expect: 100-continue\r\nContent-Length");
    let (head, body) = head.split_at(head.find("\r\n\r\n").unwrap() + 4);
    conn.send(head.as_bytes());
    assert_eq!(conn.response(SLACK).expect("100 Continue").status, 100);
    conn.send(body.as_bytes());
    assert_eq!(conn.response(SLACK).expect("an answer").status, 200);
}

/// The open-file limit the flooded server runs under.
const FLOOD_FD_LIMIT: u64 = 256;

/// How many slow clients flood it: more than it could hold descriptors for.
const FLOOD_CONNECTIONS: usize = 400;

/// How many of the flood's handshakes may go unanswered in time (see the assertion).
const FLOOD_CLIENTS_LOST_AT_MOST: usize = 2;

#[test]
fn a_flood_of_slow_bodies_neither_exhausts_descriptors_nor_silences_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = stile_bin();
    command
        .current_dir(dir.path())
        .args(["--listen", "127.0.0.1:0", "--data-dir", "data"])
        .env("STILE_AUTH_KEYS", TEST_KEY)
        .env("STILE_DELIVERY_WORKERS", "4");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: FLOOD_FD_LIMIT, rlim_max: FLOOD_FD_LIMIT };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let server = ServerProcess::start_command(command).expect("the server starts");

    // Every slow client sends a valid key and one byte of a 1,000-byte body. (A client
    // the server's backlog has no room for is left out: its handshake is not answered.)
    let flood: Vec<RawConn> = (0..FLOOD_CONNECTIONS)
        .filter_map(|_| {
            let mut conn = RawConn::open_within(&server.base, Duration::from_secs(1))?;
            conn.send(&slow_body("POST", "/v1/events"));
            Some(conn)
        })
        .collect();
    let flooded = flood.len();

    // A health check made after the flood, which it queues behind.
    let started = Instant::now();
    let deadline = Duration::from_secs(20);
    let mut answered = None;
    while answered.is_none() && started.elapsed() < deadline {
        let left = deadline.saturating_sub(started.elapsed());
        let Some(mut probe) = RawConn::open_within(&server.base, left) else { continue };
        probe.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        answered = probe.response(deadline.saturating_sub(started.elapsed())).filter(|r| r.status == 200);
    }
    let waited = started.elapsed();
    let log = server.stderr_so_far().join("\n");
    assert!(answered.is_some(), "/healthz did not answer within {deadline:?} under the flood; log:\n{log}");
    assert!(!log.contains("Too many open files"), "the server ran out of descriptors:\n{log}");
    // A SYN lost once on a loaded machine leaves a client out however deep the backlog
    // (seen once in CI: 399); a shallow one leaves out many more (a backlog of 64 left
    // out 6 here).
    assert!(
        flooded + FLOOD_CLIENTS_LOST_AT_MOST >= FLOOD_CONNECTIONS,
        "{flooded} of {FLOOD_CONNECTIONS} slow clients got in: the backlog holds too few of those the server cannot"
    );
    eprintln!("healthz answered {waited:?} after a flood of {flooded} slow bodies");
    let summary = server.summary.join("\n");
    assert!(summary.contains("connections"), "the summary says what the cap is:\n{summary}");
    drop(flood);
}
