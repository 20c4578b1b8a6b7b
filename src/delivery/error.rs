//! The delivery engine's errors. The API maps them to its answers (`crate::error`); the
//! engine never names an HTTP status.

use std::sync::Arc;

use crate::store::StoreError;

/// Why the engine could not do what it was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine is stopping and takes no more work.
    #[error("the delivery engine is shutting down")]
    ShuttingDown,
    /// The store failed (shared: one failed group commit answers every publish in it).
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        EngineError::Store(Arc::new(err))
    }
}
