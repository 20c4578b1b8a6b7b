//! The guard in front of every HTTP connection: an I/O adapter between the socket and
//! actix-http's HTTP/1 dispatcher that bounds the time a request may take to arrive, and
//! answers requests that are not valid HTTP/1.1, or too large to read, with the API's
//! JSON error instead of actix's empty one. It must not change a byte of what it lets
//! through, in either direction.
//!
//! Why an I/O adapter, and why this one. The dispatcher refuses a malformed or oversized
//! request head with a response it builds itself with an empty body
//! (`Response::bad_request().drop_body()`, a bare 431, and a bare 408 from its head timer),
//! and offers no hook to change it; its head timer covers a connection's first request
//! only; and nothing bounds a body that arrives slowly, nor the rest of a chunked body it
//! drains after a route answered without reading it. Rewriting its empty answers on the
//! way out would mean parsing the response stream (lengths, chunking, answers to `HEAD`)
//! to find where each response starts. Validating heads with a parser of our own would
//! drift from actix's. So the guard runs the dispatcher's own decoder
//! (`actix_http::h1::Codec`: the same code, the same limits) over a copy of every byte that
//! arrives, and hands the dispatcher only bytes the decoder has accepted:
//!
//! - A request the decoder refuses, or that passes a limit of ours (a request line over
//!   [`MAX_REQUEST_LINE_BYTES`], a head over [`MAX_HEAD_BYTES`]), never reaches actix, so
//!   actix never answers it. The guard ends the dispatcher's input before it instead; the
//!   dispatcher answers the requests it already has, in order (pipelining), then shuts the
//!   connection down, and the guard writes its JSON refusal in that shutdown, before the
//!   socket's own. The refusal is in the envelope of the API the path names
//!   (`api::error_body_for_path`), encoded by actix's own encoder.
//! - A partial head is held back until it is whole: actix cannot act on one anyway.
//! - Since the guard knows where each request starts and ends, it owns the request
//!   deadline (`server.request_timeout`): a request must arrive whole, head and body,
//!   within it of its first byte (of the connection's opening, for the first request),
//!   whether or not its route reads the body. A head that is late is refused 408 as above.
//!   A body that is late is cut: the dispatcher reads the end of the stream, the handler
//!   reading the body fails, and learns from the connection's state
//!   (`api::connection::Connection`) to answer 408 in its own API's envelope; a route that
//!   already answered gets its connection closed.
//! - A connection a handler upgraded to a WebSocket (`stile listen`) passes through
//!   untouched from then on.
//!
//! While the server holds three quarters of its connection cap
//! ([`crate::server::limits`]) or more, a request gets at most [`PRESSURED_REQUEST_TIMEOUT`]
//! to arrive: the slow clients holding the connections are shed in seconds, not in
//! `request_timeout`, so that the connections waiting in the backlog (a health check among
//! them) are accepted. Requests sent at once, as clients send them, take milliseconds.
//!
//! The guard must see plain HTTP: a TLS acceptor, if stile ever terminates TLS itself, goes
//! beneath it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::{AsyncRead, AsyncWrite, Decoder, Encoder, ReadBuf, poll_read_buf};
use actix_http::body::BodySize;
use actix_http::error::ParseError;
use actix_http::h1::{Codec, Message, MessageType};
use actix_http::header::{self, HeaderValue};
use actix_http::{ConnectionType, Response, ServiceConfig};
use bytes::{Buf, Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use crate::api::connection::{BodyCut, Connection, request_timeout};
use crate::error::{ApiError, ErrorCode};

/// The longest request line (method, target, version) read, in bytes: the common limit
/// (nginx's buffer, Apache's `LimitRequestLine`); API paths and queries are far shorter.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;

/// The largest request head read, in bytes: twice Node's default, for browsers that send
/// many cookies to localhost; actix itself reads up to 128 KiB (and 96 headers).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The most read from the socket at once, in bytes.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// How long a request has to arrive while the server is near its connection cap.
pub const PRESSURED_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a request older than [`PRESSURED_REQUEST_TIMEOUT`] looks again whether the
/// server is near its cap (it may have come near since the request began).
const PRESSURE_RECHECK: Duration = Duration::from_millis(500);

/// How long closing a connection the guard stopped reading may take, to write the
/// refusal and read (and drop) what the client still sends, so that closing does not
/// reset the connection before the client has read the refusal (actix lingers as long).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of a server shares, across its worker threads: the request
/// timeout and how many connections are open against the cap.
#[derive(Debug)]
pub struct Load {
    /// `server.request_timeout`.
    request_timeout: Duration,
    /// Connections open now.
    open: AtomicUsize,
    /// From how many open connections requests get [`PRESSURED_REQUEST_TIMEOUT`].
    pressure_at: usize,
    /// Whether the last word logged was that the server is near its cap.
    warned: AtomicBool,
}

impl Load {
    /// The shared state of a server that holds at most `cap` connections.
    pub fn new(request_timeout: Duration, cap: usize) -> Self {
        Self { request_timeout, open: AtomicUsize::new(0), pressure_at: (cap * 3 / 4).max(1), warned: false.into() }
    }

    /// Whether the server is near its cap.
    fn pressured(&self) -> bool {
        self.open.load(Ordering::Relaxed) >= self.pressure_at
    }

    fn opened(&self) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open >= self.pressure_at && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                open,
                "the server is near its connection cap: requests that do not arrive within {} are cut",
                humantime::format_duration(PRESSURED_REQUEST_TIMEOUT)
            );
        }
    }

    fn closed(&self) {
        let open = self.open.fetch_sub(1, Ordering::Relaxed) - 1;
        // Half the threshold, so a server hovering at it does not log every connection.
        if open < self.pressure_at / 2 && self.warned.swap(false, Ordering::Relaxed) {
            tracing::info!(open, "the server is no longer near its connection cap");
        }
    }
}

/// Where the connection is in its stream of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: nothing of the next has come (the dispatcher's keep-alive timer
    /// bounds this, from the end of the last response).
    Idle,
    /// A request is arriving: its first byte came at `since` (for a connection's first
    /// request: the connection opened then); `in_body`: its head has been handed over.
    Arriving { since: Instant, in_body: bool },
    /// A handler upgraded the connection: bytes pass as they come.
    PassThrough,
    /// The guard stopped reading: the dispatcher reads the end of the stream.
    Cut,
}

/// A connection behind the guard; the dispatcher reads and writes it like the socket.
pub struct Guarded<T> {
    /// The socket.
    io: T,
    /// Who is at the other end, for the log.
    peer: Option<SocketAddr>,
    /// The server's shared state.
    load: Arc<Load>,
    /// What the handlers see of this connection.
    connection: Rc<Connection>,
    /// actix's date service and settings, for its decoder and encoder.
    config: ServiceConfig,
    /// The dispatcher's decoder, run over `unchecked` to know what the dispatcher will
    /// make of the bytes.
    codec: Codec,
    /// Bytes read and not yet handed over (the same bytes as `unchecked` before each
    /// decode: the decoder consumes `unchecked`, and as much of `raw` is handed over).
    raw: BytesMut,
    /// The copy the decoder consumes.
    unchecked: BytesMut,
    /// Bytes the decoder accepted, for the dispatcher to read.
    ready: BytesMut,
    /// Where the connection is: between requests, a request arriving, cut, or passed through.
    phase: Phase,
    /// The socket's read side has ended.
    read_eof: bool,
    /// The one timer: the request deadline, or the end of closing.
    timer: Pin<Box<Sleep>>,
    /// What `timer` is set to.
    timer_at: Option<Instant>,
    /// Our refusal, written when the dispatcher shuts the connection down.
    refusal: Option<BytesMut>,
    /// When closing must be done by, once it began.
    closing_by: Option<Instant>,
    /// The socket's write side is shut.
    write_shut: bool,
}

impl<T> Guarded<T> {
    /// Guards `io`, a connection from `peer` to a server whose connections share `load`;
    /// `config` is actix's, shared by a worker's connections.
    pub fn new(io: T, peer: Option<SocketAddr>, load: Arc<Load>, config: ServiceConfig) -> Self {
        load.opened();
        let now = Instant::now();
        Self {
            io,
            peer,
            load,
            connection: Rc::new(Connection::default()),
            codec: Codec::new(config.clone()),
            config,
            raw: BytesMut::new(),
            unchecked: BytesMut::new(),
            ready: BytesMut::new(),
            phase: Phase::Arriving { since: now, in_body: false },
            read_eof: false,
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
            refusal: None,
            closing_by: None,
            write_shut: false,
        }
    }

    /// The state its requests see (put in their connection data).
    pub fn connection(&self) -> Rc<Connection> {
        Rc::clone(&self.connection)
    }

    /// If the request arriving is late at `now`, the deadline it missed.
    fn missed(&self, now: Instant) -> Option<Duration> {
        let Phase::Arriving { since, .. } = self.phase else { return None };
        let full = self.load.request_timeout;
        if now >= since + full {
            return Some(full);
        }
        let short = PRESSURED_REQUEST_TIMEOUT;
        (short < full && now >= since + short && self.load.pressured()).then_some(short)
    }

    /// When to look at the arriving request's deadline next.
    fn next_look(&self, now: Instant) -> Option<Instant> {
        let Phase::Arriving { since, .. } = self.phase else { return None };
        let full = since + self.load.request_timeout;
        let short = since + PRESSURED_REQUEST_TIMEOUT;
        if short >= full {
            return Some(full);
        }
        Some(if now < short { short } else { full.min(now + PRESSURE_RECHECK) })
    }

    /// Sets the timer to `at` and polls it.
    fn poll_timer(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        if self.timer_at != Some(at) {
            self.timer.as_mut().reset(at);
            self.timer_at = Some(at);
        }
        self.timer.as_mut().poll(cx)
    }

    /// Runs the decoder over what arrived, hands over what it accepts, and refuses or cuts
    /// at the first thing it does not.
    fn check(&mut self, now: Instant) {
        loop {
            let Phase::Arriving { since, in_body } = self.phase else { return };
            let before = self.unchecked.len();
            let decoded = self.codec.decode(&mut self.unchecked);
            let consumed = before - self.unchecked.len();
            match decoded {
                Ok(Some(Message::Item(_))) => {
                    if let Some(error) = over_limits(&self.raw[..consumed]) {
                        return self.refuse(error);
                    }
                    self.hand_over(consumed);
                    match self.codec.message_type() {
                        MessageType::None => self.request_done(now),
                        MessageType::Payload | MessageType::Stream => {
                            self.phase = Phase::Arriving { since, in_body: true };
                        }
                    }
                }
                Ok(Some(Message::Chunk(Some(_)))) => self.hand_over(consumed),
                Ok(Some(Message::Chunk(None))) => {
                    self.hand_over(consumed);
                    self.request_done(now);
                }
                Ok(None) => {
                    if !in_body && let Some(error) = over_limits(&self.unchecked) {
                        return self.refuse(error);
                    }
                    // A chunked body's size lines are consumed before their data comes.
                    self.hand_over(consumed);
                    return;
                }
                Err(err) if in_body => {
                    tracing::debug!(peer = ?self.peer, error = %err, "malformed request body");
                    return self.cut_body(BodyCut::Malformed);
                }
                Err(err) => {
                    let error = refusal_for(&err, &self.raw);
                    return self.refuse(error);
                }
            }
        }
    }

    /// Hands the first `n` bytes read to the dispatcher.
    fn hand_over(&mut self, n: usize) {
        if n > 0 {
            self.ready.unsplit(self.raw.split_to(n));
        }
    }

    /// A request has arrived whole; what follows it is the next one's.
    fn request_done(&mut self, now: Instant) {
        self.phase =
            if self.unchecked.is_empty() { Phase::Idle } else { Phase::Arriving { since: now, in_body: false } };
    }

    /// Refuses the request whose head is in `raw` with `error`, once the dispatcher is done
    /// with what came before it.
    fn refuse(&mut self, error: ApiError) {
        tracing::debug!(peer = ?self.peer, %error, "refused a request head");
        let path = request_path(&self.raw);
        self.refusal = self.render(path.as_deref(), error);
        self.stop_reading();
    }

    /// Stops reading a body the dispatcher has the head of; its handler learns why.
    fn cut_body(&mut self, cut: BodyCut) {
        self.connection.set_cut(cut);
        self.stop_reading();
    }

    fn stop_reading(&mut self) {
        self.phase = Phase::Cut;
        self.raw.clear();
        self.unchecked.clear();
    }

    /// The request arriving missed its deadline `limit`.
    fn time_out(&mut self, limit: Duration) {
        tracing::debug!(peer = ?self.peer, limit = ?limit, "a request did not arrive in time");
        match self.phase {
            Phase::Arriving { in_body: true, .. } => self.cut_body(BodyCut::TimedOut(limit)),
            _ => self.refuse(request_timeout(limit)),
        }
    }

    /// From now on, bytes pass as they come.
    fn pass_through(&mut self) {
        self.ready.unsplit(self.raw.split());
        self.unchecked.clear();
        self.phase = Phase::PassThrough;
    }

    /// `error` as a whole response that closes the connection, as actix's encoder writes
    /// one; `None` if it cannot be encoded (it then goes unanswered, as before the guard).
    fn render(&self, path: Option<&str>, error: ApiError) -> Option<BytesMut> {
        let status = error.code.status();
        let body = Bytes::from(crate::api::error_body_for_path(path, error));
        let mut response = Response::with_body(status, ());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        crate::api::security_headers(response.headers_mut(), true);
        response.head_mut().set_connection_type(ConnectionType::Close);
        let mut out = BytesMut::new();
        let mut encoder = Codec::new(self.config.clone());
        let encoded = encoder
            .encode(Message::Item((response, BodySize::Sized(body.len() as u64))), &mut out)
            .and_then(|()| encoder.encode(Message::Chunk(Some(body)), &mut out))
            .and_then(|()| encoder.encode(Message::Chunk(None), &mut out));
        match encoded {
            Ok(()) => Some(out),
            Err(err) => {
                tracing::warn!(error = %err, "cannot encode a refusal");
                None
            }
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        self.load.closed();
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = buf.remaining().min(this.ready.len());
                buf.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match this.phase {
                // The end of the stream, for the dispatcher.
                Phase::Cut => return Poll::Ready(Ok(())),
                Phase::PassThrough => return Pin::new(&mut this.io).poll_read(cx, buf),
                Phase::Idle | Phase::Arriving { .. } => {}
            }
            if this.connection.upgraded() {
                this.pass_through();
                continue;
            }
            if this.read_eof {
                // The client is done sending; a request it left unfinished is dropped.
                return Poll::Ready(Ok(()));
            }
            let now = Instant::now();
            this.raw.reserve(READ_CHUNK_BYTES);
            let before = this.raw.len();
            // What has arrived is taken before the deadline is looked at: the time the
            // dispatcher did not ask for bytes (it pauses while it holds an unread body)
            // is not the client's.
            match poll_read_buf(Pin::new(&mut this.io), cx, &mut this.raw) {
                Poll::Ready(Ok(0)) => this.read_eof = true,
                Poll::Ready(Ok(_)) => {
                    this.unchecked.extend_from_slice(&this.raw[before..]);
                    if this.phase == Phase::Idle {
                        this.phase = Phase::Arriving { since: now, in_body: false };
                    }
                    this.check(now);
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    if let Some(limit) = this.missed(now) {
                        this.time_out(limit);
                        continue;
                    }
                    match this.next_look(now) {
                        Some(at) if this.poll_timer(cx, at).is_ready() => {}
                        _ => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// The dispatcher is done: writes our refusal if there is one, shuts the socket's
    /// write side, and, if the guard stopped reading a client that may still be sending,
    /// reads and drops what it sends until it closes or [`CLOSE_GRACE`] has passed.
    /// Nothing here can hold the connection past that grace.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let by = *this.closing_by.get_or_insert_with(|| Instant::now() + CLOSE_GRACE);
        while let Some(out) = this.refusal.as_mut() {
            if out.is_empty() {
                this.refusal = None;
                break;
            }
            match Pin::new(&mut this.io).poll_write(cx, out) {
                Poll::Ready(Ok(n)) if n > 0 => out.advance(n),
                // The client is gone, or does not read: give up the refusal.
                Poll::Ready(_) => this.refusal = None,
                Poll::Pending if this.poll_timer(cx, by).is_ready() => this.refusal = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        if !this.write_shut {
            match Pin::new(&mut this.io).poll_shutdown(cx) {
                Poll::Pending if this.poll_timer(cx, by).is_pending() => return Poll::Pending,
                _ => this.write_shut = true,
            }
        }
        if this.phase == Phase::Cut && !this.read_eof {
            loop {
                this.raw.clear();
                this.raw.reserve(READ_CHUNK_BYTES);
                match poll_read_buf(Pin::new(&mut this.io), cx, &mut this.raw) {
                    Poll::Ready(Ok(n)) if n > 0 => {}
                    Poll::Ready(_) => break,
                    Poll::Pending if this.poll_timer(cx, by).is_ready() => break,
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.read_eof = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// The refusal for a head (`head`: its bytes so far) past our limits, if it is.
fn over_limits(head: &[u8]) -> Option<ApiError> {
    let line_ends = head.iter().take(MAX_REQUEST_LINE_BYTES + 2).any(|&b| b == b'\n');
    if !line_ends && head.len() >= MAX_REQUEST_LINE_BYTES + 2 {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!(
                "The request line (method, path and query) is longer than the {} KiB this server reads; send fewer or shorter query parameters.",
                MAX_REQUEST_LINE_BYTES / 1024
            ),
        ));
    }
    (head.len() > MAX_HEAD_BYTES).then(headers_too_large)
}

fn headers_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::HeadersTooLarge,
        format!(
            "The request's headers are larger than the {} KiB, or more than the 96 headers, this server reads.",
            MAX_HEAD_BYTES / 1024
        ),
    )
}

/// The refusal for a head (`head`: its bytes) the decoder failed on with `err`.
fn refusal_for(err: &ParseError, head: &[u8]) -> ApiError {
    let message = match err {
        // Past actix's own limits: 128 KiB, or 96 headers.
        ParseError::TooLarge => return over_limits(head).unwrap_or_else(headers_too_large),
        ParseError::Header => {
            "The request's headers are malformed or ambiguous: a header that may appear once is repeated (Content-Length, Transfer-Encoding, Host), Transfer-Encoding comes with Content-Length or is not `chunked`, an HTTP/1.1 request has no Host, or a name or value is not valid."
        }
        ParseError::Method => "The request method is not a valid HTTP method.",
        ParseError::Uri(_) => "The request target is not a valid URI.",
        ParseError::Version => "This server speaks HTTP/1.1 and HTTP/1.0 only.",
        _ => "The request is not valid HTTP/1.1.",
    };
    ApiError::new(ErrorCode::BadRequest, message)
}

/// The path of the request line at the start of `head`, if it has a whole one with an
/// origin-form target (`/v1/...`): it says which API's envelope a refusal takes.
fn request_path(head: &[u8]) -> Option<String> {
    let end = head.iter().take(MAX_REQUEST_LINE_BYTES + 2).position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let target = line.split(' ').nth(1)?;
    let path = target.split(['?', '#']).next()?;
    path.starts_with('/').then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// A guarded connection with `timeout` and the client's end of it.
    fn connection(timeout: Duration, cap: usize) -> (Guarded<DuplexStream>, DuplexStream, Arc<Load>) {
        let (server, client) = duplex(1 << 20);
        let load = Arc::new(Load::new(timeout, cap));
        (Guarded::new(server, None, Arc::clone(&load), ServiceConfig::default()), client, load)
    }

    /// Everything the dispatcher would read until the guard ends its stream (or `within`).
    async fn read_all(guarded: &mut Guarded<DuplexStream>, within: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(within, guarded.read_to_end(&mut out)).await.expect("the stream ends in time").unwrap();
        out
    }

    /// What the guard writes when the dispatcher shuts the connection down (the client
    /// has stopped sending, so the guard does not linger).
    async fn refusal(guarded: &mut Guarded<DuplexStream>, client: &mut DuplexStream) -> String {
        client.shutdown().await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[actix_web::test]
    async fn whole_requests_pass_untouched_and_a_bad_one_ends_the_stream_before_it() {
        let (mut guarded, mut client, _) = connection(Duration::from_secs(30), 100);
        let good = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                    POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
        let bad = "POST /v1/webhooks/endpoints HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        client.write_all(format!("{good}{bad}").as_bytes()).await.unwrap();
        assert_eq!(read_all(&mut guarded, Duration::from_secs(5)).await, good.as_bytes());
        let answer = refusal(&mut guarded, &mut client).await;
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n") && answer.contains("content-type: application/json"));
        // The path named the Kayle API: its envelope.
        let body = answer.split_once("\r\n\r\n").expect("a head and a body").1;
        assert!(body.starts_with(r#"{"data":null,"error":{"code":"bad_request","message":"#), "{answer}");
    }

    #[actix_web::test]
    async fn a_late_head_is_refused_408_and_a_late_body_is_cut_for_the_handler() {
        let timeout = Duration::from_millis(100);
        let (mut guarded, mut client, _) = connection(timeout, 100);
        client.write_all(b"GET /v1/events HTTP/1.1\r\nHost").await.unwrap();
        assert!(read_all(&mut guarded, Duration::from_secs(5)).await.is_empty(), "a partial head is held back");
        let answer = refusal(&mut guarded, &mut client).await;
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");

        let (mut guarded, mut client, _) = connection(timeout, 100);
        let head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{";
        client.write_all(head).await.unwrap();
        assert_eq!(read_all(&mut guarded, Duration::from_secs(5)).await, head, "the head and the byte come through");
        assert_eq!(guarded.connection().cut(), Some(BodyCut::TimedOut(timeout)));
        assert_eq!(refusal(&mut guarded, &mut client).await, "", "the handler answers, not the guard");
    }

    #[actix_web::test]
    async fn limits_of_our_own_come_before_actixs() {
        let (mut guarded, mut client, _) = connection(Duration::from_secs(30), 100);
        client.write_all(format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000)).as_bytes()).await.unwrap();
        assert!(read_all(&mut guarded, Duration::from_secs(5)).await.is_empty());
        assert!(refusal(&mut guarded, &mut client).await.starts_with("HTTP/1.1 414 URI Too Long\r\n"));

        let (mut guarded, mut client, _) = connection(Duration::from_secs(30), 100);
        let head = format!("GET /apps/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(33 * 1024));
        client.write_all(head.as_bytes()).await.unwrap();
        assert!(read_all(&mut guarded, Duration::from_secs(5)).await.is_empty());
        let answer = refusal(&mut guarded, &mut client).await;
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{answer}");
        assert!(answer.contains(r#"{"success":false,"error":{"code":"HEADERS_TOO_LARGE""#), "{answer}");
    }

    #[actix_web::test]
    async fn near_the_cap_a_request_gets_the_short_timeout_and_an_upgrade_none() {
        // Cap 4: pressure from 3 open connections.
        let (mut guarded, mut client, load) = connection(Duration::from_secs(30), 4);
        let others: Vec<_> =
            (0..2).map(|_| Guarded::new(duplex(64).0, None, Arc::clone(&load), ServiceConfig::default())).collect();
        let started = Instant::now();
        client.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{").await.unwrap();
        read_all(&mut guarded, Duration::from_secs(10)).await;
        assert!(started.elapsed() >= PRESSURED_REQUEST_TIMEOUT && started.elapsed() < Duration::from_secs(8));
        assert_eq!(guarded.connection().cut(), Some(BodyCut::TimedOut(PRESSURED_REQUEST_TIMEOUT)));
        drop(others);
        assert!(!load.pressured());

        let (mut guarded, mut client, _) = connection(Duration::from_millis(100), 100);
        client
            .write_all(b"GET /v1/listen HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let mut head = vec![0; 256];
        let n = guarded.read(&mut head).await.unwrap();
        assert!(n > 0);
        guarded.connection().mark_upgraded();
        // Frames that come after the timeout are read, not cut off.
        let late = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b"frames").await.unwrap();
        };
        let mut frames = [0; 6];
        let (_, read) = tokio::join!(late, guarded.read_exact(&mut frames));
        read.expect("the frames, not the end of the stream");
        assert_eq!(&frames, b"frames");
    }
}
