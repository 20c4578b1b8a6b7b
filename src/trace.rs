//! W3C trace context: the trace an event is published in, kept with it, and the
//! `traceparent` each of its attempts carries (the same trace id, a span id of its own).
//!
//! The headers are read with OpenTelemetry's `TraceContextPropagator` and the ids made by
//! its random generator; what this module adds is what stile keeps of them (a compact
//! [`EventTrace`] stored with the event) and the rule: a valid `traceparent` on a publish
//! makes the publish a child of the caller's span; an invalid or missing one starts a new
//! trace (a bad header never fails a publish), and then any `tracestate` is dropped.

use std::str::FromStr;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// The request header that carries the trace and the caller's span.
pub const TRACEPARENT: &str = "traceparent";

/// The request header that carries the vendors' own trace state.
pub const TRACESTATE: &str = "tracestate";

/// The most bytes of `tracestate` kept with an event: the W3C minimum a vendor must
/// propagate. A longer one loses whole entries from its end.
const MAX_TRACESTATE: usize = 512;

/// The trace an event belongs to, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTrace {
    /// The W3C trace id: the caller's, or new.
    pub trace_id: [u8; 16],
    /// The span that published the event, the parent of each attempt's span.
    pub span_id: [u8; 8],
    /// Whether the caller sampled the trace (a trace stile starts is sampled).
    pub sampled: bool,
    /// The caller's `tracestate` (validated, at most [`MAX_TRACESTATE`] bytes), or empty.
    pub state: String,
}

/// One attempt's place in its event's trace: a span of its own, whose id its request's
/// `traceparent` carries and its exported span has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTrace {
    /// The event's trace.
    pub event: EventTrace,
    /// The attempt's span.
    pub span_id: [u8; 8],
}

impl AttemptTrace {
    /// The request's `traceparent`: the event's trace id and sampling, this span.
    pub fn traceparent(&self) -> String {
        let flags = if self.event.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = opentelemetry::trace::SpanId::from_bytes(self.span_id);
        format!("00-{}-{span}-{:02x}", self.event.trace_id(), flags.to_u8())
    }

    /// The request's `tracestate`: the caller's, if it sent one.
    pub fn tracestate(&self) -> Option<&str> {
        (!self.event.state.is_empty()).then_some(self.event.state.as_str())
    }
}

/// A publish request's trace: the event's, and the caller's span it is a child of (none
/// when stile started the trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSpan {
    /// What the event keeps.
    pub trace: EventTrace,
    /// The caller's span, from a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
}

/// The two headers of a request, for the propagator.
struct Headers<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

impl PublishSpan {
    /// The trace of a publish request with these headers (`tracestate` as its fields
    /// joined with commas).
    pub fn of_request(traceparent: Option<&str>, tracestate: Option<&str>) -> PublishSpan {
        let ids = RandomIdGenerator::default();
        let context = TraceContextPropagator::new().extract(&Headers { traceparent, tracestate });
        let caller = context.span().span_context().clone();
        if caller.is_valid() && traceparent.is_some_and(|header| well_formed(header.trim())) {
            let state = kept_state(caller.trace_state());
            let trace = EventTrace {
                trace_id: caller.trace_id().to_bytes(),
                span_id: ids.new_span_id().to_bytes(),
                sampled: caller.is_sampled(),
                state,
            };
            return PublishSpan { trace, parent: Some(caller.span_id().to_bytes()) };
        }
        PublishSpan { trace: EventTrace::new_root(), parent: None }
    }
}

impl PublishSpan {
    /// This span with the sampling of `ratio` (0 to 1) applied to a trace stile started
    /// (a caller's trace keeps the caller's choice, as OpenTelemetry's parent-based
    /// sampler does). The choice is read from the trace id (as its `TraceIdRatioBased`
    /// sampler reads it), so every process decides a trace alike.
    pub fn sampled_at(mut self, ratio: f64) -> PublishSpan {
        if self.parent.is_none() && ratio < 1.0 {
            let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
            let draw = u64::from_be_bytes(self.trace.trace_id[8..].try_into().unwrap_or_default()) >> 1;
            self.trace.sampled = draw < bound;
        }
        self
    }
}

/// Whether `header` has W3C's shape, which the propagator checks only in part (it reads
/// "abc" as an id, and "1" as flags): lowercase hex fields of 2, 32, 16 and 2 digits,
/// exactly that for version 00, and more only after a dash for a later version.
fn well_formed(header: &str) -> bool {
    let bytes = header.as_bytes();
    let length = bytes.len() == 55 || (bytes.len() > 55 && bytes[55] == b'-' && !header.starts_with("00"));
    length
        && bytes[..55].iter().enumerate().all(|(i, &b)| match i {
            2 | 35 | 52 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// What is kept of a caller's valid `tracestate`: its header form, whole entries from its
/// end dropped until it fits [`MAX_TRACESTATE`].
fn kept_state(state: &TraceState) -> String {
    let mut header = state.header();
    while header.len() > MAX_TRACESTATE {
        match header.rfind(',') {
            Some(cut) => header.truncate(cut),
            None => header.clear(),
        }
    }
    header
}

/// The span id of an event no request published (stile's own: a test ping, an
/// operational event, a session's): its attempts' spans are the roots of its trace.
pub const NO_PUBLISH_SPAN: [u8; 8] = [0; 8];

impl EventTrace {
    /// The trace of a publish request that brought none: a new one, the publish its root.
    pub fn new_root() -> EventTrace {
        let ids = RandomIdGenerator::default();
        let (trace_id, span_id) = (ids.new_trace_id().to_bytes(), ids.new_span_id().to_bytes());
        EventTrace { trace_id, span_id, sampled: true, state: String::new() }
    }

    /// The trace of an event stile publishes itself (a test ping, an operational event,
    /// an expiring session): a new one, with no publish span ([`NO_PUBLISH_SPAN`]).
    pub fn of_stiles_own() -> EventTrace {
        EventTrace { span_id: NO_PUBLISH_SPAN, ..EventTrace::new_root() }
    }

    /// The span that published the event, if a request did: the parent of each attempt's.
    pub fn publish_span(&self) -> Option<[u8; 8]> {
        (self.span_id != NO_PUBLISH_SPAN).then_some(self.span_id)
    }

    /// A new span of this trace, for one attempt.
    pub fn attempt(&self) -> AttemptTrace {
        AttemptTrace { event: self.clone(), span_id: RandomIdGenerator::default().new_span_id().to_bytes() }
    }

    /// The trace id, to display (no text made until it is written).
    pub fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(self.trace_id)
    }

    /// The stored form: trace id, span id, flags, then the `tracestate` text.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.state.len());
        out.extend_from_slice(&self.trace_id);
        out.extend_from_slice(&self.span_id);
        out.push(u8::from(self.sampled));
        out.extend_from_slice(self.state.as_bytes());
        out
    }

    /// Reads [`EventTrace::to_bytes`]; `None` if the bytes are not such a form.
    pub fn from_bytes(bytes: &[u8]) -> Option<EventTrace> {
        let (ids, rest) = bytes.split_at_checked(24)?;
        let (&flags, state) = rest.split_first()?;
        let state = std::str::from_utf8(state).ok()?;
        if flags > 1 || (!state.is_empty() && TraceState::from_str(state).is_err()) {
            return None;
        }
        Some(EventTrace {
            trace_id: ids[..16].try_into().ok()?,
            span_id: ids[16..].try_into().ok()?,
            sampled: flags == 1,
            state: state.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_makes_the_publish_a_child_of_the_callers_span() {
        let published = PublishSpan::of_request(Some(CALLER), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
        assert_eq!(hex::encode(published.trace.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(published.parent.map(hex::encode).as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(hex::encode(published.trace.span_id), "00f067aa0ba902b7", "the publish is a span of its own");
        assert!(published.trace.sampled);
        assert_eq!(published.trace.state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        let unsampled = PublishSpan::of_request(Some(&CALLER.replace("-01", "-00")), None);
        assert!(!unsampled.trace.sampled, "the caller's choice is kept");
        assert_eq!(unsampled.trace.state, "");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_and_drops_the_tracestate() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-abc-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let published = PublishSpan::of_request(Some(bad), Some("congo=t61rcWkgMzE"));
            assert_eq!(published.parent, None, "{bad:?}");
            assert_ne!(hex::encode(published.trace.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_ne!(published.trace.trace_id, [0; 16]);
            assert_eq!(published.trace.state, "", "{bad:?}");
        }
        let a = PublishSpan::of_request(None, None).trace;
        let b = PublishSpan::of_request(None, None).trace;
        assert_ne!(a.trace_id, b.trace_id, "a new trace per event");
        // A later version is read by its first four fields (W3C: parse what is known).
        let later = PublishSpan::of_request(Some(&format!("{}-more", CALLER.replacen("00", "01", 1))), None);
        assert_eq!(later.parent.map(hex::encode).as_deref(), Some("00f067aa0ba902b7"));
    }

    #[test]
    fn a_ratio_samples_the_traces_stile_starts_and_never_overrules_a_caller() {
        let kept = |ratio: f64| {
            (0..2000).filter(|_| PublishSpan::of_request(None, None).sampled_at(ratio).trace.sampled).count()
        };
        assert_eq!(kept(1.0), 2000);
        assert_eq!(kept(0.0), 0);
        let tenth = kept(0.1);
        assert!((120..=280).contains(&tenth), "about a tenth of 2000: {tenth}");
        let unsampled = PublishSpan::of_request(Some(&CALLER.replace("-01", "-00")), None);
        assert!(!unsampled.sampled_at(1.0).trace.sampled, "the caller's choice, not the ratio");
        assert!(PublishSpan::of_request(Some(CALLER), None).sampled_at(0.0).trace.sampled);
    }

    #[test]
    fn a_bad_tracestate_is_dropped_and_a_long_one_loses_entries_from_its_end() {
        let bad = PublishSpan::of_request(Some(CALLER), Some("not a list member"));
        assert_eq!((bad.parent.is_some(), bad.trace.state.as_str()), (true, ""));
        let long: Vec<String> = (0..32).map(|i| format!("k{i}={}", "v".repeat(20))).collect();
        let kept = PublishSpan::of_request(Some(CALLER), Some(&long.join(","))).trace.state;
        assert!(kept.len() <= MAX_TRACESTATE && !kept.is_empty(), "{}", kept.len());
        assert!(long.join(",").starts_with(&kept), "whole entries, from the front");
        assert!(kept.ends_with(&"v".repeat(20)));
    }

    #[test]
    fn each_attempt_is_a_new_span_of_the_events_trace() {
        let trace = PublishSpan::of_request(Some(CALLER), Some("congo=t61rcWkgMzE")).trace;
        let attempt = trace.attempt();
        let (first, header, state) = (attempt.span_id, attempt.traceparent(), attempt.tracestate());
        assert_ne!(first, trace.attempt().span_id);
        assert_ne!(first, trace.span_id);
        assert_eq!(header, format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", hex::encode(first)));
        assert_eq!(state, Some("congo=t61rcWkgMzE"));
        // What the receiver reads back is the same trace, with the attempt's span.
        let seen = TraceContextPropagator::new().extract(&Headers { traceparent: Some(&header), tracestate: state });
        assert!(seen.span().span_context().is_valid());
        assert_eq!(seen.span().span_context().trace_id().to_bytes(), trace.trace_id);
        assert_eq!(seen.span().span_context().span_id().to_bytes(), first);
    }

    #[test]
    fn the_stored_form_reads_back_and_damage_is_refused() {
        for trace in [
            PublishSpan::of_request(Some(CALLER), Some("congo=t61rcWkgMzE")).trace,
            PublishSpan::of_request(None, None).trace,
            EventTrace::of_stiles_own(),
        ] {
            assert_eq!(EventTrace::from_bytes(&trace.to_bytes()), Some(trace.clone()));
            assert_eq!(trace.trace_id().to_string().len(), 32, "32 lowercase hex digits in logs");
        }
        assert_eq!(EventTrace::of_stiles_own().publish_span(), None, "stile's own events have no publish span");
        assert!(PublishSpan::of_request(None, None).trace.publish_span().is_some());
        assert_eq!(EventTrace::from_bytes(&[0; 24]), None, "no flags");
        assert_eq!(EventTrace::from_bytes(&[[0; 24].as_slice(), &[2]].concat()), None, "unknown flags");
        assert_eq!(EventTrace::from_bytes(&[[0; 25].as_slice(), b"not a state"].concat()), None);
    }
}
