//! The listen connections the server holds, by listener endpoint: where the engine hands
//! an attempt to a listener endpoint instead of sending it over HTTP, and how it learns
//! whether one is connected (while none is, its attempts wait, parked).
//!
//! The connection itself (a WebSocket) is the API's (`api::listen`); it registers here
//! with [`Listeners::connect`] and reads the attempts to send from the [`Connection`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::http::{RESPONSE_EXCERPT_BYTES, SendOutcome};
use super::listen_wire as wire;
use crate::ids::EndpointId;

/// One attempt handed to a connection, and where its result goes.
#[derive(Debug)]
pub struct Forward {
    /// What to send down the connection.
    pub delivery: wire::Delivery,
    /// Where the CLI's answer goes; dropped unanswered if the connection ends.
    pub reply: oneshot::Sender<wire::DeliveryResult>,
}

/// A registered connection: the attempts to send down it. It ends (the receiver yields
/// `None`) when another connection of the same endpoint replaces it or the server closes
/// every connection.
#[derive(Debug)]
pub struct Connection {
    /// The listener endpoint.
    pub endpoint: EndpointId,
    /// Which connection of the endpoint this is, to unregister only itself.
    pub generation: u64,
    /// The attempts to send.
    pub inbox: mpsc::UnboundedReceiver<Forward>,
}

/// The connected listener endpoints.
#[derive(Debug, Default)]
pub struct Listeners {
    sessions: Mutex<HashMap<EndpointId, (u64, mpsc::UnboundedSender<Forward>)>>,
    generations: AtomicU64,
}

impl Listeners {
    /// Registers a new connection for `endpoint`, replacing the one it had (which ends).
    pub fn connect(&self, endpoint: EndpointId) -> Connection {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(endpoint, (generation, outbox));
        Connection { endpoint, generation, inbox }
    }

    /// Unregisters a connection that ended, unless a newer one replaced it.
    pub fn disconnect(&self, connection: &Connection) {
        let mut sessions = self.lock();
        if sessions.get(&connection.endpoint).is_some_and(|(generation, _)| *generation == connection.generation) {
            sessions.remove(&connection.endpoint);
        }
    }

    /// Ends the connection of `endpoint`, if it has one (the endpoint was deleted).
    pub fn close(&self, endpoint: EndpointId) {
        self.lock().remove(&endpoint);
    }

    /// Ends every connection (the server is stopping).
    pub fn close_all(&self) {
        self.lock().clear();
    }

    /// The endpoints a CLI is connected for.
    pub fn connected(&self) -> Vec<EndpointId> {
        self.lock().keys().copied().collect()
    }

    /// Whether a CLI is connected for `endpoint`.
    pub fn is_connected(&self, endpoint: EndpointId) -> bool {
        self.lock().contains_key(&endpoint)
    }

    /// Hands one attempt to `endpoint`'s connection and waits up to `wait` for the CLI's
    /// answer, which becomes the attempt's outcome. No connection, a connection that ends
    /// first, or no answer in time is a failed attempt, retried on the schedule.
    pub async fn forward(&self, endpoint: EndpointId, delivery: wire::Delivery, wait: Duration) -> SendOutcome {
        let failed = |error: String| SendOutcome::failed(error, 0);
        let outbox = self.lock().get(&endpoint).map(|(_, outbox)| outbox.clone());
        let Some(outbox) = outbox else { return failed("no `stile listen` is connected for this endpoint".into()) };
        let (reply, answer) = oneshot::channel();
        if outbox.send(Forward { delivery, reply }).is_err() {
            return failed("the `stile listen` connection closed".into());
        }
        match tokio::time::timeout(wait, answer).await {
            Err(_) => failed(format!("`stile listen` did not answer within {} s", wait.as_secs())),
            Ok(Err(_)) => failed("the `stile listen` connection closed before the delivery was answered".into()),
            Ok(Ok(result)) => outcome_of(result),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, (u64, mpsc::UnboundedSender<Forward>)>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The outcome a CLI's result stands for: a 2xx without an error is a success; the body
/// is cut to the excerpt every attempt keeps.
fn outcome_of(result: wire::DeliveryResult) -> SendOutcome {
    let mut body = result.body;
    if let Some(text) = &mut body
        && text.len() > RESPONSE_EXCERPT_BYTES
    {
        let mut end = RESPONSE_EXCERPT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let error = match (result.error, result.status) {
        (Some(error), _) => Some(error),
        (None, Some(status)) if !(200..300).contains(&status) => Some(format!("HTTP {status}")),
        (None, Some(_)) => None,
        (None, None) => Some("`stile listen` reported neither a status nor an error".into()),
    };
    SendOutcome {
        status: result.status,
        body_excerpt: body,
        error,
        duration_ms: result.duration_ms,
        retry_after: None,
        unreached: false,
        cancelled: false,
        sent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> wire::Delivery {
        wire::Delivery {
            delivery_id: "dlv_1".into(),
            event_id: "evt_1".into(),
            event_type: "a.b".into(),
            attempt: 1,
            headers: vec![],
            body: "{}".into(),
        }
    }

    fn result(status: Option<u16>, error: Option<&str>) -> wire::DeliveryResult {
        wire::DeliveryResult {
            delivery_id: "dlv_1".into(),
            status,
            body: Some("é".repeat(RESPONSE_EXCERPT_BYTES)),
            error: error.map(Into::into),
            duration_ms: 4,
        }
    }

    #[tokio::test]
    async fn an_attempt_goes_to_the_newest_connection_and_its_answer_is_the_outcome() {
        let listeners = Listeners::default();
        let endpoint = EndpointId::new();
        let unconnected = listeners.forward(endpoint, delivery(), Duration::from_secs(1)).await;
        assert!(!unconnected.succeeded() && unconnected.error.unwrap().contains("no `stile listen`"));

        let mut first = listeners.connect(endpoint);
        let mut second = listeners.connect(endpoint);
        assert!(first.inbox.recv().await.is_none(), "the older connection ends");
        listeners.disconnect(&first);
        assert!(listeners.is_connected(endpoint), "an old connection does not unregister a newer one");

        let answering = tokio::spawn(async move {
            let forward = second.inbox.recv().await.unwrap();
            assert_eq!(forward.delivery.delivery_id, "dlv_1");
            forward.reply.send(result(Some(200), None)).unwrap();
            let forward = second.inbox.recv().await.unwrap();
            forward.reply.send(result(Some(500), None)).unwrap();
            second
        });
        let ok = listeners.forward(endpoint, delivery(), Duration::from_secs(5)).await;
        assert!(ok.succeeded(), "{ok:?}");
        assert!(ok.body_excerpt.unwrap().len() <= RESPONSE_EXCERPT_BYTES);
        let failed = listeners.forward(endpoint, delivery(), Duration::from_secs(5)).await;
        assert_eq!((failed.status, failed.error.as_deref()), (Some(500), Some("HTTP 500")));
        let second = answering.await.unwrap();

        // Unanswered: a timeout; a connection that ends: a failure at once.
        let late = listeners.forward(endpoint, delivery(), Duration::from_millis(50)).await;
        assert!(late.error.unwrap().contains("did not answer"));
        listeners.close_all();
        drop(second);
        assert!(!listeners.is_connected(endpoint));
    }

    #[test]
    fn a_result_without_status_or_error_is_a_failure() {
        assert!(!outcome_of(result(None, None)).succeeded());
        assert!(!outcome_of(result(Some(204), Some("connection reset"))).succeeded());
        assert!(outcome_of(result(Some(204), None)).succeeded());
    }
}
