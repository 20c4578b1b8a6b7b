//! Pooled connections the receiver closed as a request went out on them.
//!
//! A receiver closes a keep-alive connection once it has been idle for its timeout (5 s
//! in Node, actix and uvicorn; 75 s in nginx). If the pool hands that connection to a
//! request in the same instant, the request is written into a closing socket and fails
//! with no answer: not the endpoint's failure but a race on our side. hyper sends again by
//! itself only if it had not started writing; past that it cannot know whether the
//! receiver read the request. A webhook is delivered at least once and carries its event
//! id for deduplication, so such a request is sent once more, at once, on another
//! connection, as Go's client does for a request it may repeat. A connection that never
//! answered (a fresh one) is not given that second chance: its failure is the endpoint's.

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// A connection that counts the answers that came over it.
pub struct Counted<T> {
    inner: T,
    answers: Answers,
}

impl<T> Counted<T> {
    /// `inner`, not yet answered on.
    pub fn new(inner: T) -> Self {
        Self { inner, answers: Answers(Arc::new(AtomicU32::new(0))) }
    }
}

/// The count of answers received on one connection, shared by every request the pool
/// hands it to (hyper keeps a connection's [`Connected`] with it in the pool, and puts a
/// copy of its extras in each response and each error).
#[derive(Clone)]
struct Answers(Arc<AtomicU32>);

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.answers.clone())
    }
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// Notes an answer on the connection `response` came over (hyper copies the connection's
/// extras, [`Answers`] among them, into each response).
pub fn note_answer<B>(response: &hyper::Response<B>) {
    if let Some(answers) = response.extensions().get::<Answers>() {
        answers.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether the request failed with `err` on a connection that had answered before and
/// was closed under it before a complete answer: the race above, worth one more try.
/// Not when making a new connection failed (hyper may have tried one after finding the
/// pooled one closed).
pub fn lost_to_a_closing_connection(err: &hyper_util::client::legacy::Error) -> bool {
    if err.is_connect() {
        return false;
    }
    let Some(connected) = err.connect_info() else { return false };
    let mut extras = hyper::http::Extensions::new();
    connected.get_extras(&mut extras);
    extras.get::<Answers>().is_some_and(|answers| answers.0.load(Ordering::Relaxed) > 0) && closed_unanswered(err)
}

/// Whether `err` says the peer closed or reset the connection before a complete answer.
fn closed_unanswered(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && h.is_incomplete_message()
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    // TLS closed without its goodbye (rustls' report of a bare TCP close).
                    | io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        cause = e.source();
    }
    false
}
