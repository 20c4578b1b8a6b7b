//! Parking: the scheduler hands back the due entries it will not send now. An entry whose
//! attempt is no longer pending leaves the queue; one whose endpoint became deliverable
//! again stays queued; a listener endpoint's, while another process holds its `stile
//! listen` connection, is handed to that process; the rest wait parked until their
//! endpoint is enabled (or its CLI connects).

use std::collections::HashMap;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::model::{
    AttemptRecord, AttemptStatus, EndpointRecord, EndpointStatus, QueueKey, Scheduled, StoreError,
};

/// What parking needs of a backend, inside one write transaction. The writes may be
/// gathered and made at [`ParkTx::finish`].
pub(crate) trait ParkTx {
    /// The attempts with these ids, by id (held by this transaction where others could
    /// change them too).
    async fn attempts(&mut self, ids: &[DeliveryId]) -> Result<HashMap<DeliveryId, AttemptRecord>, StoreError>;

    /// The application's endpoint `id`.
    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;

    /// The process that holds listener endpoint `id`'s `stile listen` connection, if
    /// another one does (one process on its own file: never).
    async fn other_holder(&mut self, id: EndpointId) -> Result<Option<String>, StoreError>;

    /// Takes the entry off the queue.
    fn unqueue(&mut self, key: QueueKey) -> Result<(), StoreError>;

    /// Leaves the entry queued, to be looked at again (by any process).
    fn keep(&mut self, key: QueueKey);

    /// Reserves the entry for the process `holder`.
    fn hand_to(&mut self, key: QueueKey, holder: String);

    /// Parks `attempt`'s entry `key`.
    fn park(&mut self, attempt: &AttemptRecord, key: QueueKey) -> Result<(), StoreError>;

    /// Makes the gathered writes.
    async fn finish(self) -> Result<(), StoreError>;
}

/// Parks the entries `keys` the scheduler will not send now (see the module doc); answers
/// those left queued, for the scheduler to look at again. `deliverable` says whether
/// attempts to an endpoint may be made now.
pub(crate) async fn park(
    mut tx: impl ParkTx,
    keys: &[QueueKey],
    deliverable: impl Fn(&EndpointRecord) -> bool,
) -> Result<Scheduled, StoreError> {
    let ids: Vec<DeliveryId> = keys.iter().map(|k| k.attempt()).collect();
    let mut attempts = tx.attempts(&ids).await?;
    let mut still_queued = Scheduled::default();
    // Each listener endpoint's holder, looked up once per batch.
    let mut holders: HashMap<EndpointId, Option<String>> = HashMap::new();
    for key in keys {
        let pending = attempts.remove(&key.attempt()).filter(|r| r.status == AttemptStatus::Pending);
        let Some(record) = pending else {
            tx.unqueue(*key)?;
            continue;
        };
        let endpoint = tx.endpoint(record.app, record.endpoint_id).await?;
        if endpoint.as_ref().is_some_and(&deliverable) {
            still_queued.push(*key);
            tx.keep(*key);
            continue;
        }
        if let Some(listener) = endpoint.filter(|e| e.is_listener() && e.status == EndpointStatus::Enabled) {
            let holder = match holders.get(&listener.id) {
                Some(known) => known.clone(),
                None => {
                    let found = tx.other_holder(listener.id).await?;
                    holders.insert(listener.id, found.clone());
                    found
                }
            };
            if let Some(holder) = holder {
                tx.hand_to(*key, holder);
                continue;
            }
        }
        tx.park(&record, *key)?;
    }
    tx.finish().await?;
    Ok(still_queued)
}
