//! Changing an endpoint, and resuming it when the change enables it: the retries that
//! waited while it was disabled go back on the queue, due now, and its health starts over
//! (else an old run of failures would disable it again at once).

use crate::ids::{AppId, EndpointId};
use crate::store::model::{EndpointRecord, EndpointStatus, EndpointUpdated, Owner, Scheduled, StoreError};

/// What changing an endpoint needs of a backend, inside one write transaction.
pub(crate) trait EndpointChangeTx {
    /// Changes the endpoint with `change`, keeping its indexes in step; returns it as
    /// stored, with its health (`None`: no such endpoint).
    async fn update_endpoint(
        &mut self,
        app: AppId,
        id: EndpointId,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<EndpointRecord>, StoreError>;

    /// Forgets the endpoint's run of failures.
    async fn reset_health(&mut self, id: EndpointId) -> Result<(), StoreError>;

    /// Puts the endpoint's parked attempts back on the queue, due at `now_ms`.
    async fn unpark(&mut self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError>;
}

/// Changes `owner`'s endpoint `id` and, with `resume` and the endpoint enabled after the
/// change, resumes it.
pub(crate) async fn update_and_resume(
    tx: &mut impl EndpointChangeTx,
    owner: Owner,
    id: EndpointId,
    now_ms: u64,
    resume: bool,
    change: impl FnOnce(&mut EndpointRecord),
) -> Result<Option<EndpointUpdated>, StoreError> {
    let Some(mut endpoint) = tx.update_endpoint(owner.app, id, change).await? else { return Ok(None) };
    let mut resumed = Scheduled::default();
    if resume && endpoint.status == EndpointStatus::Enabled {
        tx.reset_health(id).await?;
        endpoint.failing = None;
        resumed = tx.unpark(id, now_ms).await?;
    }
    Ok(Some(EndpointUpdated { endpoint, resumed }))
}
