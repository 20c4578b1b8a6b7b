//! The spans stile exports, as the hot paths record them (plain values, no OpenTelemetry
//! types) and as the export thread turns them into OpenTelemetry's span data.
//!
//! Attribute names follow OpenTelemetry's semantic conventions where one fits
//! (`http.request.method`, `url.full`, `server.address`, `http.response.status_code`,
//! `error.type`); stile's own are under `stile.`.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::trace::{AttemptTrace, EventTrace, PublishSpan};

/// A span to export.
#[derive(Debug)]
pub enum Span {
    /// A publish and its fan-out (two spans).
    Publish(PublishSpanRecord),
    /// One delivery attempt.
    Attempt(AttemptSpan),
}

/// A publish request's span, and the span of its fan-out inside it (the event and its
/// deliveries written, from handing them to the writer to their commit).
#[derive(Debug)]
pub struct PublishSpanRecord {
    /// The request's trace: the event's, and the caller's span.
    pub span: PublishSpan,
    /// The application it published to.
    pub app: AppId,
    /// The application's mode.
    pub mode: Mode,
    /// The type it asked to publish.
    pub event_type: String,
    /// The event stored, if it was.
    pub event: Option<EventId>,
    /// Deliveries scheduled.
    pub deliveries: u32,
    /// When the publish started and ended.
    pub during: (SystemTime, SystemTime),
    /// When the fan-out started and ended, if it began.
    pub fan_out: Option<(SystemTime, SystemTime)>,
    /// Why the publish failed, if it did.
    pub error: Option<String>,
}

/// One attempt's span: its request to the endpoint, from signing to the answer.
#[derive(Debug)]
pub struct AttemptSpan {
    /// The attempt's span of its event's trace (the id its `traceparent` carried).
    pub trace: AttemptTrace,
    /// The endpoint's application.
    pub app: AppId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Where the request went (the endpoint's URL, or the one its transformation made).
    pub url: String,
    /// `POST`, or `PUT` if the endpoint's transformation said so.
    pub method: &'static str,
    /// The attempt.
    pub delivery: DeliveryId,
    /// Its event.
    pub event: EventId,
    /// The event's type as delivered.
    pub event_type: String,
    /// Which attempt of the event to this endpoint it was (1 for the first).
    pub number: u32,
    /// When the request started and its answer ended.
    pub during: (SystemTime, SystemTime),
    /// The status answered, if an answer came.
    pub status: Option<u16>,
    /// Why it failed (an error, or the status that is not a success), if it did.
    pub error: Option<String>,
}

impl Span {
    /// How many spans it exports.
    pub fn count(&self) -> u64 {
        match self {
            Span::Publish(publish) => 1 + u64::from(publish.fan_out.is_some()),
            Span::Attempt(_) => 1,
        }
    }

    /// OpenTelemetry's span data of it, in `scope`.
    pub(super) fn into_data(self, scope: &InstrumentationScope) -> Vec<SpanData> {
        match self {
            Span::Publish(publish) => publish.into_data(scope),
            Span::Attempt(attempt) => vec![attempt.into_data(scope)],
        }
    }
}

impl PublishSpanRecord {
    fn into_data(self, scope: &InstrumentationScope) -> Vec<SpanData> {
        let trace = &self.span.trace;
        let status = status_of(self.error);
        let mut attributes = vec![
            KeyValue::new("stile.application.id", self.app.to_string()),
            KeyValue::new("stile.mode", self.mode.as_str()),
            KeyValue::new("stile.event.type", self.event_type),
            KeyValue::new("stile.deliveries", i64::from(self.deliveries)),
        ];
        if let Some(event) = self.event {
            attributes.push(KeyValue::new("stile.event.id", event.to_string()));
        }
        let publish = SpanShape {
            span_id: trace.span_id,
            parent: self.span.parent,
            parent_is_remote: true,
            kind: SpanKind::Server,
            name: "publish",
            during: self.during,
            attributes,
            status: status.clone(),
        };
        let mut spans = vec![publish.data(trace, scope)];
        if let Some(during) = self.fan_out {
            let fan_out = SpanShape {
                span_id: RandomIdGenerator::default().new_span_id().to_bytes(),
                parent: Some(trace.span_id),
                parent_is_remote: false,
                kind: SpanKind::Internal,
                name: "fan-out",
                during,
                attributes: vec![KeyValue::new("stile.deliveries", i64::from(self.deliveries))],
                status,
            };
            spans.push(fan_out.data(trace, scope));
        }
        spans
    }
}

impl AttemptSpan {
    fn into_data(self, scope: &InstrumentationScope) -> SpanData {
        let mut attributes = vec![
            KeyValue::new("stile.application.id", self.app.to_string()),
            KeyValue::new("stile.endpoint.id", self.endpoint.to_string()),
            KeyValue::new("stile.delivery.id", self.delivery.to_string()),
            KeyValue::new("stile.event.id", self.event.to_string()),
            KeyValue::new("stile.event.type", self.event_type),
            KeyValue::new("stile.attempt.number", i64::from(self.number)),
            KeyValue::new("http.request.method", self.method),
        ];
        let duration = self.during.1.duration_since(self.during.0).unwrap_or_default();
        attributes.push(KeyValue::new("stile.attempt.duration_ms", duration.as_millis() as i64));
        if let Ok(url) = url::Url::parse(&self.url) {
            // Only where it went: a receiver's URL often carries a credential in its path
            // (Slack's, Discord's), query or user part, so none of those is exported.
            attributes.push(KeyValue::new("url.scheme", url.scheme().to_string()));
            if let Some(host) = url.host_str() {
                attributes.push(KeyValue::new("server.address", host.to_string()));
            }
            if let Some(port) = url.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        if let Some(status) = self.status {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        if self.error.is_some() {
            let kind = self.status.map_or_else(|| "request".to_string(), |status| status.to_string());
            attributes.push(KeyValue::new("error.type", kind));
        }
        let shape = SpanShape {
            span_id: self.trace.span_id,
            parent: self.trace.event.publish_span(),
            parent_is_remote: false,
            kind: SpanKind::Client,
            name: "attempt",
            during: self.during,
            attributes,
            status: status_of(self.error),
        };
        shape.data(&self.trace.event, scope)
    }
}

/// A failure's status (with its reason), or unset (OpenTelemetry leaves success unset).
fn status_of(error: Option<String>) -> Status {
    error.map_or(Status::Unset, |reason| Status::Error { description: Cow::Owned(reason) })
}

/// What differs between stile's spans.
struct SpanShape {
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    parent_is_remote: bool,
    kind: SpanKind,
    name: &'static str,
    during: (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
    status: Status,
}

impl SpanShape {
    /// The span data of this span of `trace`.
    fn data(self, trace: &EventTrace, scope: &InstrumentationScope) -> SpanData {
        let state = TraceState::from_str(&trace.state).unwrap_or_default();
        let flags = if trace.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(trace.trace_id),
                SpanId::from_bytes(self.span_id),
                flags,
                false,
                state,
            ),
            parent_span_id: self.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: self.parent.is_some() && self.parent_is_remote,
            span_kind: self.kind,
            name: Cow::Borrowed(self.name),
            start_time: self.during.0,
            end_time: self.during.1,
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: self.status,
            instrumentation_scope: scope.clone(),
        }
    }
}
