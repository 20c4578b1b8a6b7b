//! What the connection layer (`crate::server::guard`) and the handlers tell each other
//! about the connection a request came on: why the connection stopped reading a request's
//! body (so the handler reading it answers 408 rather than a vague 400), and that a
//! handler upgraded it to a WebSocket (so no request deadline applies any more).
//!
//! One value per connection, shared between the guard and the requests' connection data
//! (`HttpRequest::conn_data`); a connection lives on one worker thread, hence `Rc` and
//! `Cell`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_web::HttpRequest;

use crate::error::{ApiError, ErrorCode};

/// Why the connection layer stopped reading a request's body before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCut {
    /// The request had not arrived whole within this time (`server.request_timeout`, or
    /// less while the server is near its connection cap).
    TimedOut(Duration),
    /// The chunked encoding of the body is broken.
    Malformed,
}

impl BodyCut {
    /// The answer to the request whose body was cut.
    pub fn error(self) -> ApiError {
        match self {
            BodyCut::TimedOut(limit) => request_timeout(limit),
            BodyCut::Malformed => ApiError::new(
                ErrorCode::BadRequest,
                "The request body's chunked encoding is malformed; the connection is closed.",
            ),
        }
    }
}

/// The 408 for a request that did not arrive whole within `limit`.
pub fn request_timeout(limit: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!(
            "The request did not arrive whole within {} of its first byte; the connection is closed. Send each request at once.",
            humantime::format_duration(limit)
        ),
    )
}

/// The state of one connection that its requests can see.
#[derive(Debug, Default)]
pub struct Connection {
    /// Set when the guard stops reading a body early.
    cut: Cell<Option<BodyCut>>,
    /// Set by a handler that turned the connection into a WebSocket.
    upgraded: Cell<bool>,
}

impl Connection {
    /// The state of the connection `req` came on; `None` for a request that did not come
    /// through the guard (actix's test requests, say).
    pub fn of(req: &HttpRequest) -> Option<&Rc<Connection>> {
        req.conn_data::<Rc<Connection>>()
    }

    /// Why the body of the current request stopped early, if it did.
    pub fn cut(&self) -> Option<BodyCut> {
        self.cut.get()
    }

    /// Records why the guard stopped reading the current request's body.
    pub fn set_cut(&self, cut: BodyCut) {
        self.cut.set(Some(cut));
    }

    /// Marks the connection as upgraded to a WebSocket: from now on its bytes are frames
    /// of a long-lived session, not requests that must arrive in time.
    pub fn mark_upgraded(&self) {
        self.upgraded.set(true);
    }

    /// Whether a handler upgraded the connection.
    pub fn upgraded(&self) -> bool {
        self.upgraded.get()
    }
}
