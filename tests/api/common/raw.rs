//! HTTP/1.1 written by hand over a plain TCP connection, for what a well-behaved client
//! never sends: malformed heads, bodies that never end, pipelines, silence.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A connection to a test server, with what it has read and not yet parsed.
pub struct RawConn {
    stream: TcpStream,
    unread: Vec<u8>,
}

/// One response as it came over the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, as `Content-Length` framed it.
    pub body: Vec<u8>,
}

impl RawConn {
    /// Connects to `base` (`http://127.0.0.1:PORT`).
    pub fn open(base: &str) -> Self {
        Self::open_within(base, Duration::from_secs(10)).expect("connect to the test server")
    }

    /// Connects to `base`, unless the connection is not made within `within` (a server
    /// whose backlog is full drops the handshake, and the client's retries take seconds).
    pub fn open_within(base: &str, within: Duration) -> Option<Self> {
        let address = base.trim_start_matches("http://").parse().expect("an address");
        let stream = TcpStream::connect_timeout(&address, within).ok()?;
        Some(Self { stream, unread: Vec::new() })
    }

    /// Writes `bytes`; a server that stopped reading (it refused the request) may make the
    /// write fail, which the test then sees in what it reads.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads more into `unread`, waiting until `until` at most; `false` at the end of the
    /// stream (or a reset), or when nothing came in time.
    fn fill(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).expect("a read timeout");
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.unread.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    /// The next response, if a whole one arrives within `within`.
    pub fn response(&mut self, within: Duration) -> Option<RawResponse> {
        let until = Instant::now() + within;
        let head_end = loop {
            if let Some(end) = self.unread.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !self.fill(until) {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.unread[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        while self.unread.len() < head_end + length {
            if !self.fill(until) {
                return None;
            }
        }
        let body = self.unread[head_end..head_end + length].to_vec();
        self.unread.drain(..head_end + length);
        Some(RawResponse { status, headers, body })
    }

    /// Whether the server closes the connection (or resets it) within `within`, sending
    /// nothing more; the error says what it did instead.
    pub fn closes_within(&mut self, within: Duration) -> Result<(), String> {
        let until = Instant::now() + within;
        let mut chunk = [0u8; 16 * 1024];
        while self.unread.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("still open after {within:?}"));
            }
            self.stream.set_read_timeout(Some(left)).expect("a read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => self.unread.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("still open after {within:?}"));
                }
                Err(_) => return Ok(()),
            }
        }
        Err(format!("more bytes after the answer: {:?}", String::from_utf8_lossy(&self.unread)))
    }
}

impl RawResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (showing it) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("a JSON body, not {:?} ({e}); status {}", String::from_utf8_lossy(&self.body), self.status)
        })
    }

    /// Asserts this is a Stile API error with the given status, type and code, and returns
    /// its `error` object.
    pub fn assert_error(&self, status: u16, kind: &str, code: &str) -> Value {
        assert_eq!(self.status, status, "status of {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let error = self.json()["error"].clone();
        assert_eq!(error["type"], kind, "{error}");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| m.len() > 10), "a real message: {error}");
        error
    }
}
