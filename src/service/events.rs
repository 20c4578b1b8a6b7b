//! Event operations: publish, resend, and where an event went. The rules that are not
//! about one API's shapes live here: which types may be published and what their data
//! must be (the catalogue's), what a new event is, and what a resend refuses.

use std::sync::Arc;
use std::time::SystemTime;

use super::ServiceError;
use crate::delivery::Engine;
use crate::event_types::{EventTypes, kayle_alias_of};
use crate::ids::{EndpointId, EventId};
use crate::mode::Mode;
use crate::store::Store;
use crate::store::model::{AttemptRecord, EventFilter, EventMeta, Owner, Page, PageRequest, Resent, StoredEvent};
use crate::telemetry::{PublishSpanRecord, Span};
use crate::trace::PublishSpan;

/// The event operations, over the engine, the store and the event type catalogue.
pub struct Events<'a> {
    /// Where events are published and resent, and time.
    pub engine: &'a Engine,
    /// Where events are kept.
    pub store: &'a Arc<Store>,
    /// Which types may be published, with their data's schemas.
    pub event_types: &'a EventTypes,
}

impl Events<'_> {
    /// Publishes an event of `event_type` carrying `data` for `owner`, once the catalogue
    /// allows the type and the data: a built-in type's Kayle name is refused (it is a
    /// name endpoints receive, not a type), as is an unknown or archived type, data that
    /// is not an object, or data its type's schema refuses. The event keeps `span`'s
    /// trace, which its attempts continue. Answers once the event and its deliveries are
    /// committed, with the event and how many deliveries it has.
    pub async fn publish(
        &self,
        owner: Owner,
        event_type: &str,
        data: &serde_json::Value,
        span: PublishSpan,
    ) -> Result<(EventMeta, u32), ServiceError> {
        let telemetry = self.engine.telemetry();
        if !telemetry.exports(&span.trace) {
            return self.publish_without_span(owner, event_type, data, &span, None).await;
        }
        let started = SystemTime::now();
        let mut fan_out = None;
        let published = self.publish_without_span(owner, event_type, data, &span, Some(&mut fan_out)).await;
        let (event, deliveries, error) = match &published {
            Ok((meta, deliveries)) => (Some(meta.id), *deliveries, None),
            // Not the message: a schema's refusal quotes the data, which stays out of spans.
            Err(ServiceError::Invalid { param, .. }) => (None, 0, Some(format!("refused: invalid `{param}`"))),
            Err(_) => (None, 0, Some("not published: the store could not take it".to_string())),
        };
        telemetry.send(Span::Publish(PublishSpanRecord {
            span,
            app: owner.app,
            mode: owner.mode,
            event_type: event_type.to_string(),
            event,
            deliveries,
            during: (started, SystemTime::now()),
            fan_out,
            error,
        }));
        published
    }

    /// [`Events::publish`] without its span; `fan_out`, if given, is told when the
    /// fan-out began and ended.
    async fn publish_without_span(
        &self,
        owner: Owner,
        event_type: &str,
        data: &serde_json::Value,
        span: &PublishSpan,
        fan_out: Option<&mut Option<(SystemTime, SystemTime)>>,
    ) -> Result<(EventMeta, u32), ServiceError> {
        self.check(owner.mode, event_type, data)?;
        let mut event = crate::payload::new_event(owner, event_type, data, self.engine.clock().now_ms())?;
        event.meta.trace = Some(span.trace.clone());
        let meta = event.meta.clone();
        let published = match fan_out {
            None => self.engine.publish(event).await,
            Some(fan_out) => {
                let started = SystemTime::now();
                let published = self.engine.publish(event).await;
                *fan_out = Some((started, SystemTime::now()));
                published
            }
        }?;
        tracing::debug!(
            event = %meta.id,
            event_type,
            trace_id = %span.trace.trace_id(),
            caller_span = %span.parent.map(hex::encode).unwrap_or_default(),
            deliveries = published.deliveries,
            "event published"
        );
        Ok((meta, published.deliveries))
    }

    /// Why `data` may not be published as `event_type` in `mode`, if it may not.
    fn check(&self, mode: Mode, event_type: &str, data: &serde_json::Value) -> Result<(), ServiceError> {
        if let Some(built_in) = kayle_alias_of(event_type) {
            return Err(ServiceError::invalid(
                "type",
                format!(
                    "`{event_type}` is Kayle's name for `{built_in}`: publish `{built_in}`, and endpoints subscribed to `{event_type}` receive it under that name."
                ),
            ));
        }
        if !self.event_types.is_publishable(mode, event_type) {
            let known: Vec<String> = self.event_types.subscribable(mode);
            let known: Vec<&str> = known.iter().map(String::as_str).filter(|t| kayle_alias_of(t).is_none()).collect();
            return Err(ServiceError::invalid(
                "type",
                format!(
                    "Unknown event type `{event_type}`. Known types: {}. Declare custom types in `[[events.types]]` or create them with POST /v1/event_types.",
                    known.join(", ")
                ),
            ));
        }
        if !data.is_object() {
            return Err(ServiceError::invalid("data", "`data` must be a JSON object."));
        }
        self.event_types.check_data(mode, event_type, data).map_err(|problem| ServiceError::invalid("data", problem))
    }

    /// Schedules a new round of delivery of event `id` of `owner` (same id, same body):
    /// to `endpoint` if named, whatever it subscribes to, else to every subscribed
    /// endpoint. Refuses an endpoint `owner` does not have, and one to which the event
    /// failed for good longer ago than it keeps undelivered payloads. Returns the event as
    /// it stands after; `None`: no such event.
    pub async fn resend(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
    ) -> Result<Option<StoredEvent>, ServiceError> {
        match self.engine.resend_event(owner, id, endpoint).await? {
            Resent::NoEvent => return Ok(None),
            Resent::NoEndpoint => {
                return Err(ServiceError::invalid("endpoint", "No such webhook endpoint in this mode."));
            }
            Resent::PayloadExpired { hours } => return Err(ServiceError::PayloadExpired { param: "endpoint", hours }),
            Resent::Scheduled(_) => {}
        }
        self.get(owner, id).await
    }

    /// Event `id` of `owner`, with its body; `None`: no such event.
    pub async fn get(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, ServiceError> {
        Ok(self.store.event(owner, id).await?)
    }

    /// A page of `owner`'s events, newest first, those `filter` keeps.
    pub async fn list(
        &self,
        owner: Owner,
        request: PageRequest<EventId>,
        filter: EventFilter,
    ) -> Result<Page<StoredEvent>, ServiceError> {
        Ok(self.store.list_events(owner, request, filter).await?)
    }

    /// The newest `limit` attempts of event `id` of `owner`, to every endpoint, and
    /// whether there are more; `None`: no such event.
    pub async fn deliveries(
        &self,
        owner: Owner,
        id: EventId,
        limit: usize,
    ) -> Result<Option<(Vec<AttemptRecord>, bool)>, ServiceError> {
        Ok(match self.store.event(owner, id).await? {
            Some(_) => Some(self.store.event_attempts(owner, id, limit).await?),
            None => None,
        })
    }
}
