//! The operations the API's dialects share, under them: each takes an [`Owner`] and
//! checked input and returns a domain error ([`ServiceError`]); none knows actix or
//! `ApiError`. The dialects (`api/`) translate requests and answers around them, so no
//! dialect imports another's file for a rule. Direction: `api -> service -> delivery ->
//! store`.
//!
//! [`Owner`]: crate::store::model::apps::Owner

pub mod endpoints;

use std::sync::Arc;

use crate::delivery::EngineError;
use crate::store::Store;
use crate::store::model::StoreError;

pub use endpoints::Endpoints;

/// Why a service operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter's value breaks a rule the service checks (one that needs the network,
    /// like a URL whose host resolves to an address no webhook may go to).
    #[error("{message}")]
    Invalid {
        /// The parameter at fault.
        param: &'static str,
        /// What is wrong, for the caller to fix.
        message: String,
    },
    /// The delivery engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something the server made could not be encoded: its fault, not the caller's.
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Runs a store call on tokio's blocking pool, so the store never stalls an async thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(EngineError::ShuttingDown.into()),
    }
}
