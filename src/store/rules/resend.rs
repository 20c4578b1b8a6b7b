//! Resending an event: a new round of deliveries, to one endpoint (whatever it subscribes
//! to) or to every enabled endpoint subscribed to its type, each a first attempt due now,
//! except where the payload kept for resending has expired.

use std::collections::HashMap;

use crate::ids::{EndpointId, EventId};
use crate::store::model::attempts::undelivered_expired;
use crate::store::model::endpoints::delivered_as;
use crate::store::model::{AttemptStatus, EndpointRecord, EventMeta, Owner, Resent, Scheduled, StoreError};

use super::publish::FilteredObject;

/// What resending an event needs of a backend, inside one write transaction.
pub(crate) trait ResendTx {
    /// The event's metadata (`None`: the application has no such event).
    async fn event_meta(&mut self, owner: Owner, id: EventId) -> Result<Option<EventMeta>, StoreError>;

    /// The latest attempt of the event to each endpoint: its status, and when it was made
    /// (Unix seconds).
    async fn latest_per_endpoint(
        &mut self,
        owner: Owner,
        id: EventId,
    ) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError>;

    /// The application's endpoint `id`, kept from being deleted until the commit.
    async fn endpoint(&mut self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;

    /// The application's enabled endpoints subscribed to `event_type`, each with the name
    /// it receives the event under, kept as [`ResendTx::endpoint`] keeps one.
    async fn subscribed<'a>(
        &mut self,
        owner: Owner,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError>;

    /// The event's payload (`meta`'s), opened; empty if it is gone.
    async fn event_body(&mut self, meta: &EventMeta) -> Result<Vec<u8>, StoreError>;

    /// Keeps the event for the writes to come (after its endpoints, the order a deletion
    /// takes them in); `false`: it is gone (pruned meanwhile).
    async fn hold_event(&mut self, owner: Owner, id: EventId) -> Result<bool, StoreError>;

    /// Queues a first attempt of the event to each target, under its name, due at
    /// `now_ms`, and counts them among the event's unfinished deliveries.
    async fn queue_deliveries(
        &mut self,
        owner: Owner,
        event: EventId,
        targets: &[(EndpointRecord, &str)],
        now_ms: u64,
    ) -> Result<Scheduled, StoreError>;
}

/// Resends `owner`'s event `id` at `now_ms`: to `endpoint` if named, else to every
/// enabled endpoint subscribed to its type. An endpoint's payload is kept for resending
/// its own `undelivered_retention_hours` after a failure, else `default_hours`.
pub(crate) async fn resend(
    tx: &mut impl ResendTx,
    owner: Owner,
    id: EventId,
    endpoint: Option<EndpointId>,
    now_ms: u64,
    default_hours: u32,
) -> Result<Resent, StoreError> {
    let Some(meta) = tx.event_meta(owner, id).await? else { return Ok(Resent::NoEvent) };
    let latest = tx.latest_per_endpoint(owner, id).await?;
    let expired_for = |endpoint: &EndpointRecord| {
        let hours = endpoint.undelivered_retention_hours.unwrap_or(default_hours);
        let expired =
            latest.get(&endpoint.id).is_some_and(|(status, made)| undelivered_expired(*status, *made, hours, now_ms));
        expired.then_some(hours)
    };
    let targets = match endpoint {
        Some(endpoint) => {
            let Some(endpoint) = tx.endpoint(owner, endpoint).await? else { return Ok(Resent::NoEndpoint) };
            if let Some(hours) = expired_for(&endpoint) {
                return Ok(Resent::PayloadExpired { hours });
            }
            let name = delivered_as(&endpoint, &meta.event_type);
            vec![(endpoint, name)]
        }
        None => {
            let mut all = tx.subscribed(owner, &meta.event_type).await?;
            all.retain(|(endpoint, _)| expired_for(endpoint).is_none());
            // As at publishing, an endpoint's content filter decides (a named endpoint
            // gets the event whatever its filter: it was asked for).
            if all.iter().any(|(endpoint, _)| endpoint.filter.is_some()) {
                let body = tx.event_body(&meta).await?;
                let mut object = FilteredObject::of_body(&body, &all);
                all.retain(|(endpoint, delivered_as)| object.passes(endpoint, delivered_as));
            }
            all
        }
    };
    if !tx.hold_event(owner, id).await? {
        return Ok(Resent::NoEvent);
    }
    Ok(Resent::Scheduled(tx.queue_deliveries(owner, meta.id, &targets, now_ms).await?))
}
