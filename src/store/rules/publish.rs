//! Publishing events: each stored with its count of pending deliveries, and a first
//! attempt, due now, queued to every enabled endpoint of its application subscribed to
//! its type, under the name that endpoint receives it by; a disabled subscriber's
//! delivery is recorded as skipped, to be replayed once it is enabled again. The first
//! attempts go to this process's scheduler born ([`Born`]), with their jobs, where the
//! transaction hands them over.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::ids::{AppId, DeliveryId, EventId};
use crate::store::model::{
    AttemptRecord, Born, DueEntry, EndpointRecord, EndpointStatus, Job, NewEvent, Published, QueueKey, Scheduled,
    StoreError,
};

/// The most first attempts one transaction hands over born: about what a scheduler sends
/// at once. The rest are found on the queue, so a burst of thousands of publishes in one
/// commit does not hold thousands of copies of their endpoints and payloads.
const MAX_BORN: usize = 256;

/// What publishing needs of a backend, inside one write transaction. The rule reads every
/// subscription it needs before its first write.
pub(crate) trait PublishTx {
    /// The application's endpoints subscribed to `event_type`, enabled or disabled, each
    /// with the name it receives the event under.
    async fn subscribed<'a>(
        &mut self,
        app: AppId,
        event_type: &'a str,
    ) -> Result<Vec<(EndpointRecord, &'a str)>, StoreError>;

    /// Queues attempt 1 of `event` to `endpoint`, under `delivered_as`, due at `now_ms`;
    /// the attempt's record as queued.
    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event: EventId,
        delivered_as: &str,
        now_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<AttemptRecord, StoreError>;

    /// Makes `attempt`, just queued, born ([`Born`]) if this transaction hands its first
    /// attempts to this process's scheduler (on a shared queue: claims it for this
    /// process); whether it does.
    fn bear(&mut self, attempt: DeliveryId) -> bool;

    /// Records that `event` was not sent to `endpoint`, which is disabled: it may be
    /// replayed to it, its payload kept, for the endpoint's undelivered-payload window
    /// from `now_ms`.
    fn skip(&mut self, endpoint: &EndpointRecord, event: EventId, now_ms: u64) -> Result<(), StoreError>;

    /// Counts an event `endpoint`'s content filter refused at `now_ms`, towards its
    /// statistics.
    fn tally_filtered(&mut self, endpoint: &EndpointRecord, now_ms: u64) -> Result<(), StoreError>;

    /// Stores `events`, each with its count of pending deliveries (`pending`, in order).
    async fn store_events(&mut self, events: &[NewEvent], pending: &[u32]) -> Result<(), StoreError>;
}

/// Publishes `events` at `now_ms`: what each did, and the first attempts queued. Each
/// event type's subscribers are read once per application.
pub(crate) async fn publish(
    tx: &mut impl PublishTx,
    events: &[NewEvent],
    now_ms: u64,
) -> Result<(Vec<Published>, Scheduled), StoreError> {
    let targets = subscribers(tx, events).await?;
    publish_to(tx, events, &targets, now_ms).await
}

/// Publishes those of `events` some endpoint subscribes to (operational events: kept only
/// when heard); returns the first attempts queued.
pub(crate) async fn publish_heard(
    tx: &mut impl PublishTx,
    events: &[NewEvent],
    now_ms: u64,
) -> Result<Scheduled, StoreError> {
    let targets = subscribers(tx, events).await?;
    let heard: Vec<NewEvent> = events
        .iter()
        .filter(|e| {
            let endpoints = targets.get(&(e.meta.app, e.meta.event_type.as_str()));
            endpoints.is_some_and(|t| t.iter().any(|(endpoint, _)| endpoint.status == EndpointStatus::Enabled))
        })
        .cloned()
        .collect();
    Ok(publish_to(tx, &heard, &targets, now_ms).await?.1)
}

/// The subscribers of each (application, event type) of `events`.
async fn subscribers<'e>(
    tx: &mut impl PublishTx,
    events: &'e [NewEvent],
) -> Result<HashMap<(AppId, &'e str), Vec<(EndpointRecord, &'e str)>>, StoreError> {
    let mut targets: HashMap<(AppId, &str), Vec<(EndpointRecord, &str)>> = HashMap::new();
    for event in events {
        let key = (event.meta.app, event.meta.event_type.as_str());
        if let Entry::Vacant(slot) = targets.entry(key) {
            slot.insert(tx.subscribed(key.0, key.1).await?);
        }
    }
    Ok(targets)
}

/// Publishes `events` to their `targets`.
async fn publish_to(
    tx: &mut impl PublishTx,
    events: &[NewEvent],
    targets: &HashMap<(AppId, &str), Vec<(EndpointRecord, &str)>>,
    now_ms: u64,
) -> Result<(Vec<Published>, Scheduled), StoreError> {
    let mut scheduled = Scheduled::default();
    let mut pending = Vec::with_capacity(events.len());
    let mut published = Vec::with_capacity(events.len());
    let mut born = 0;
    for event in events {
        let meta = &event.meta;
        let endpoints = &targets[&(meta.app, meta.event_type.as_str())];
        let mut object = FilteredObject::of(event, endpoints);
        let (mut deliveries, mut filtered) = (0, 0);
        for (endpoint, delivered_as) in endpoints {
            let enabled = endpoint.status == EndpointStatus::Enabled;
            if !object.passes(endpoint, delivered_as) {
                if enabled {
                    tx.tally_filtered(endpoint, now_ms)?;
                    filtered += 1;
                }
                continue;
            }
            if enabled {
                let attempt = tx.schedule(endpoint, meta.id, delivered_as, now_ms, &mut scheduled)?;
                if born < MAX_BORN && tx.bear(attempt.id) {
                    born += 1;
                    let entry =
                        DueEntry { key: QueueKey::new(now_ms, attempt.id), endpoint: endpoint.id, app: endpoint.app };
                    let job = Job {
                        attempt,
                        endpoint: Some(endpoint.clone()),
                        body: Some(event.body.clone()),
                        trace: meta.trace.clone(),
                    };
                    scheduled.push_born(Born { entry, job });
                }
                deliveries += 1;
            } else {
                tx.skip(endpoint, meta.id, now_ms)?;
            }
        }
        pending.push(deliveries);
        published.push(Published { deliveries, filtered });
    }
    if !events.is_empty() {
        tx.store_events(events, &pending).await?;
    }
    Ok((published, scheduled))
}

/// An event's object, as its subscribers' content filters see it: read once, and only
/// when one of them has a filter (the publish rule's, and a resend's).
pub(super) struct FilteredObject(Option<serde_json::Value>);

impl FilteredObject {
    fn of(event: &NewEvent, endpoints: &[(EndpointRecord, &str)]) -> FilteredObject {
        FilteredObject::of_body(&event.body, endpoints)
    }

    /// The object of the event whose payload is `body`, if one of `endpoints` has a filter.
    pub(super) fn of_body(body: &[u8], endpoints: &[(EndpointRecord, &str)]) -> FilteredObject {
        let wanted = endpoints.iter().any(|(endpoint, _)| endpoint.filter.is_some());
        // The body is the object stile itself serialised: it parses, but if it did not most
        // filters would refuse it (a missing value fails every test but a few).
        FilteredObject(wanted.then(|| serde_json::from_slice(body).unwrap_or_default()))
    }

    /// Whether `endpoint` takes the event, received as `delivered_as` (the `type` its
    /// filter sees: a Kayle name where it subscribed by one).
    pub(super) fn passes(&mut self, endpoint: &EndpointRecord, delivered_as: &str) -> bool {
        let (Some(filter), Some(object)) = (&endpoint.filter, &mut self.0) else { return true };
        if let Some(serde_json::Value::String(event_type)) = object.get_mut("type")
            && event_type != delivered_as
        {
            *event_type = delivered_as.to_string();
        }
        filter.matches(object)
    }
}
