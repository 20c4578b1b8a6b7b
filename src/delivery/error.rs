//! The delivery engine's errors. The API maps them to its answers (`crate::error`); the
//! engine never names an HTTP status.

use std::sync::Arc;

use crate::store::model::StoreError;

/// Why the engine could not do what it was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine is stopping and takes no more work.
    #[error("the delivery engine is shutting down")]
    ShuttingDown,
    /// A test ping to a listener endpoint while no `stile listen` connection for it is
    /// held by this process: the ping has nowhere to go (the server never connects to the
    /// CLI's `forward_to` itself).
    #[error("no `stile listen` is connected for this endpoint")]
    ListenerNotConnected,
    /// A test ping found every in-flight slot of its endpoint taken for as long as it
    /// may wait.
    #[error("the endpoint has as many requests in flight as it may")]
    EndpointBusy {
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// A test ping to an endpoint paused after a refusal (429, or 503 with
    /// `Retry-After`), by whichever process sends to it.
    #[error("the endpoint is paused")]
    EndpointPaused {
        /// When the pause ends.
        retry_after: std::time::Duration,
    },
    /// A test ping beyond the endpoint's allowance of pings per second.
    #[error("too many test pings to this endpoint")]
    PingRateExceeded {
        /// When the endpoint may be pinged again.
        retry_after: std::time::Duration,
    },
    /// The store failed (shared: one failed group commit answers every publish in it).
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        EngineError::Store(Arc::new(err))
    }
}
