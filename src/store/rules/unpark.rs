//! Unparking: the parked attempts of an endpoint that may be delivered to again go back
//! on the queue, due now. At start every enabled endpoint's do, except listener
//! endpoints' (no CLI is connected yet); when an endpoint is enabled or its CLI connects,
//! that endpoint's.

use std::collections::HashMap;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::model::{EndpointRecord, EndpointStatus, Scheduled, StoreError};

/// What unparking needs of a backend, inside one write transaction.
pub(crate) trait UnparkTx {
    /// The parked attempts (of endpoint `only`, or all), each with its application and
    /// endpoint.
    async fn parked(&mut self, only: Option<EndpointId>) -> Result<Vec<(AppId, EndpointId, DeliveryId)>, StoreError>;

    /// The application's endpoint `id`, kept from being deleted until the commit.
    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;

    /// Puts these parked attempts back on the queue, due at `now_ms`; their entries.
    async fn requeue(&mut self, ids: &[DeliveryId], now_ms: u64) -> Result<Scheduled, StoreError>;
}

/// Puts back on the queue, due at `now_ms`, the parked attempts of endpoint `only` if it
/// is enabled, or (`None`) of every enabled endpoint but listener endpoints.
pub(crate) async fn unpark(
    tx: &mut impl UnparkTx,
    only: Option<EndpointId>,
    now_ms: u64,
) -> Result<Scheduled, StoreError> {
    let mut deliverable: HashMap<EndpointId, bool> = HashMap::new();
    let mut ids = Vec::new();
    for (app, endpoint, attempt) in tx.parked(only).await? {
        let goes = match deliverable.get(&endpoint) {
            Some(known) => *known,
            None => {
                let found = tx.endpoint(app, endpoint).await?;
                let goes =
                    found.is_some_and(|e| e.status == EndpointStatus::Enabled && (only.is_some() || !e.is_listener()));
                deliverable.insert(endpoint, goes);
                goes
            }
        };
        if goes {
            ids.push(attempt);
        }
    }
    tx.requeue(&ids, now_ms).await
}
