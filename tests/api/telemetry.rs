//! Span export over OTLP/HTTP: a publish, its fan-out and each attempt reach a real
//! collector (the protocol's own protobuf messages decode them) in the publish's trace,
//! with the ids the receivers saw in `traceparent`; an unsampled trace stays out; a
//! collector that hangs or refuses costs nothing but dropped spans, each counted. On the
//! backend the suite runs on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;

use crate::common::collector::{Collector, Exported};
use crate::common::receiver::{Behaviour, Receiver};
use crate::common::{TestServer, eventually, metric};

const WAIT: Duration = Duration::from_secs(20);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A server exporting to `collector` every 50 ms.
fn exporting_to(collector: &Collector, adjust: impl FnOnce(&mut stile::config::Config)) -> TestServer {
    let base = collector.base.clone();
    TestServer::start_with(move |c| {
        c.telemetry.otlp_endpoint = base;
        c.telemetry.export_interval = Duration::from_millis(50);
        adjust(c);
    })
}

/// The span id of a `traceparent`.
fn span_of(traceparent: &str) -> String {
    traceparent.split('-').nth(2).unwrap_or_default().to_string()
}

fn named<'a>(spans: &'a [Exported], name: &str) -> Vec<&'a Exported> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

fn nanos(at: u64) -> Duration {
    Duration::from_nanos(at)
}

#[test]
fn a_publish_its_fan_out_and_each_attempt_reach_the_collector_in_the_callers_trace() {
    let collector = Collector::start();
    let server = exporting_to(&collector, |c| {
        c.telemetry.service_name = "stile-test".into();
        c.delivery.retry_schedule = vec![Duration::from_millis(200)];
    });
    let receiver = Receiver::start();
    // Credentials in the URL's path and query (as Slack's and Discord's carry) stay out.
    const HOOK: &str = "/hooks/s3cret-in-path";
    receiver.set(HOOK, Behaviour::FailFirst(1));
    let endpoint = server.create_endpoint(&receiver.url(&format!("{HOOK}?token=s3cret-in-query")));
    let endpoint = endpoint["id"].as_str().unwrap().to_string();
    let published = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&json!({"type": "verification_session.created", "data": {"id": "vks_1"}}))
        .send();
    assert_eq!(published.status, 200, "{}", published.text);
    let event_id = published.body["id"].as_str().unwrap().to_string();

    // The first attempt fails, its retry succeeds: publish, fan-out and two attempts.
    let received = receiver.wait_for(HOOK, 2, WAIT);
    let spans = collector.wait_for_trace(TRACE_ID, 4, WAIT);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    assert!(spans.iter().all(|s| s.service == "stile-test" && s.scope == "stile"), "{spans:#?}");
    assert!(collector.requests().iter().all(|t| t == "application/x-protobuf"), "{:?}", collector.requests());

    let [publish] = named(&spans, "publish")[..] else { panic!("one publish span: {spans:#?}") };
    assert_eq!(publish.span.kind, SpanKind::Server as i32);
    assert_eq!(publish.parent_id(), CALLER_SPAN, "a child of the caller's span");
    assert_ne!(publish.span_id(), CALLER_SPAN);
    assert_eq!(publish.span.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(publish.attribute("stile.event.id").as_deref(), Some(event_id.as_str()));
    assert_eq!(publish.attribute("stile.event.type").as_deref(), Some("verification_session.created"));
    assert_eq!(publish.attribute("stile.deliveries").as_deref(), Some("1"));
    assert!(publish.attribute("stile.application.id").is_some_and(|id| id.starts_with("app_")), "{publish:#?}");
    assert!(publish.span.status.as_ref().is_none_or(|s| s.code == StatusCode::Unset as i32));

    let [fan_out] = named(&spans, "fan-out")[..] else { panic!("one fan-out span: {spans:#?}") };
    assert_eq!(fan_out.span.kind, SpanKind::Internal as i32);
    assert_eq!(fan_out.parent_id(), publish.span_id());
    assert!(fan_out.span.start_time_unix_nano >= publish.span.start_time_unix_nano);
    assert!(fan_out.span.end_time_unix_nano <= publish.span.end_time_unix_nano);

    let mut attempts = named(&spans, "attempt");
    attempts.sort_by_key(|s| s.attribute("stile.attempt.number"));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let sent: BTreeSet<String> = received.iter().map(|r| span_of(r.header("traceparent"))).collect();
    let exported: BTreeSet<String> = attempts.iter().map(|s| s.span_id()).collect();
    assert_eq!(sent, exported, "each attempt's span has the id its request's traceparent carried");
    for (attempt, (number, status)) in attempts.iter().zip([("1", "500"), ("2", "200")]) {
        assert_eq!(attempt.span.kind, SpanKind::Client as i32);
        assert_eq!(attempt.parent_id(), publish.span_id(), "a child of the publish");
        assert_eq!(attempt.attribute("stile.attempt.number").as_deref(), Some(number));
        assert_eq!(attempt.attribute("http.response.status_code").as_deref(), Some(status));
        assert_eq!(attempt.attribute("stile.endpoint.id").as_deref(), Some(endpoint.as_str()));
        assert_eq!(attempt.attribute("stile.event.id").as_deref(), Some(event_id.as_str()));
        assert_eq!(attempt.attribute("url.full"), None, "no path, no query");
        assert_eq!(attempt.attribute("server.address").as_deref(), Some("127.0.0.1"));
        let port = receiver.base.rsplit(':').next().unwrap().to_string();
        assert_eq!(
            (attempt.attribute("server.port"), attempt.attribute("url.scheme").as_deref()),
            (Some(port), Some("http"))
        );
        assert!(attempt.attribute("stile.attempt.duration_ms").is_some());
        assert!(attempt.span.end_time_unix_nano >= attempt.span.start_time_unix_nano);
        assert!(attempt.span.start_time_unix_nano >= publish.span.start_time_unix_nano);
    }
    let exported = format!("{spans:?}");
    assert!(!exported.contains("s3cret"), "a credential of the URL was exported: {exported}");
    let failed = attempts[0].span.status.as_ref().expect("the failed attempt's status");
    assert_eq!((failed.code, failed.message.as_str()), (StatusCode::Error as i32, "HTTP 500"));
    assert_eq!(attempts[0].attribute("error.type").as_deref(), Some("500"));
    assert!(attempts[1].span.status.as_ref().is_none_or(|s| s.code == StatusCode::Unset as i32));
    let retried_after = nanos(attempts[1].span.start_time_unix_nano) - nanos(attempts[0].span.end_time_unix_nano);
    assert!(retried_after >= Duration::from_millis(150), "the retry waited its schedule: {retried_after:?}");

    assert!(eventually(WAIT, || metric(&server.base, "stile_telemetry_spans_exported_total") >= 4));
    assert_eq!(metric(&server.base, "stile_telemetry_spans_dropped_total"), 0);
}

#[test]
fn an_attempt_span_says_how_and_where_a_transformed_request_went() {
    let collector = Collector::start();
    let server = exporting_to(&collector, |_| {});
    let (own, other) = (Receiver::start(), Receiver::start());
    let code = format!("function handler(w) {{ w.url = {:?}; w.method = 'PUT'; return w; }}", other.url("/moved"));
    let created = server.post(
        "/v1/webhook_endpoints",
        json!({"url": own.url("/hooks"), "enabled_events": ["*"], "transformation": {"code": code}}),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let published = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .json(&json!({"type": "verification_session.created", "data": {"id": "vks_1"}}))
        .send();
    assert_eq!(published.status, 200, "{}", published.text);
    other.wait_for("/moved", 1, WAIT);
    let spans = collector.wait_for_trace(TRACE_ID, 3, WAIT);
    let [attempt] = named(&spans, "attempt")[..] else { panic!("one attempt span: {spans:#?}") };
    assert_eq!(attempt.attribute("http.request.method").as_deref(), Some("PUT"));
    let port = other.base.rsplit(':').next().unwrap().to_string();
    assert_eq!(attempt.attribute("server.port"), Some(port), "the port the transformation sent to");
}

#[test]
fn an_unsampled_trace_is_not_exported_and_stiles_own_events_start_their_traces() {
    let collector = Collector::start();
    let server = exporting_to(&collector, |_| {});
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint(&receiver.url("/hook"));
    let endpoint = endpoint["id"].as_str().unwrap().to_string();

    // The caller chose not to sample: its event is delivered with the flag kept, and
    // nothing of it is exported.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let publish = |traceparent: Option<&str>| {
        let mut request = server.req("POST", "/v1/events");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let published = request.json(&json!({"type": "verification_session.created", "data": {}})).send();
        assert_eq!(published.status, 200, "{}", published.text);
        published.body["id"].as_str().unwrap().to_string()
    };
    publish(Some(unsampled));
    let received = receiver.wait_for("/hook", 1, WAIT);
    assert!(received[0].header("traceparent").ends_with("-00"), "{:?}", received[0].headers);
    // Recorded means its attempt ended, and its span (if any) was queued before.
    assert!(eventually(WAIT, || server.deliveries(&endpoint).iter().all(|a| a["status"] == "succeeded")));

    // Without a traceparent the publish is the root of a new trace.
    let rooted = publish(None);
    let received = receiver.wait_for("/hook", 2, WAIT);
    let trace = received[1].header("traceparent").split('-').nth(1).unwrap().to_string();
    let spans = collector.wait_for_trace(&trace, 3, WAIT);
    let [publish_span] = named(&spans, "publish")[..] else { panic!("{spans:#?}") };
    assert_eq!(publish_span.parent_id(), "", "a root");
    assert_eq!(publish_span.attribute("stile.event.id").as_deref(), Some(rooted.as_str()));
    let [attempt] = named(&spans, "attempt")[..] else { panic!("{spans:#?}") };
    assert_eq!(attempt.parent_id(), publish_span.span_id());
    // The queue is exported in order: the unsampled attempt, queued earlier, would be here.
    assert!(
        collector.spans().iter().all(|s| s.trace_id() != "0af7651916cd43dd8448eb211c80319c"),
        "{:#?}",
        collector.spans()
    );

    // An event stile publishes itself (an operational webhook here) has no publish span:
    // its attempt is the root of its trace.
    let operational = server.post(
        "/v1/operational_webhook_endpoints",
        json!({"url": receiver.url("/ops"), "enabled_events": ["endpoint.created"]}),
    );
    assert_eq!(operational.status, 200, "{}", operational.text);
    server.create_endpoint(&receiver.url("/another"));
    let told = receiver.wait_for("/ops", 1, WAIT);
    let trace = told[0].header("traceparent").split('-').nth(1).unwrap().to_string();
    let spans = collector.wait_for_trace(&trace, 1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!((spans[0].span.name.as_str(), spans[0].parent_id().as_str()), ("attempt", ""));
    assert_eq!(spans[0].span_id(), span_of(told[0].header("traceparent")));
}

#[test]
fn a_sample_ratio_of_zero_keeps_publishes_without_a_traceparent_out_but_not_a_callers() {
    let collector = Collector::start();
    let server = exporting_to(&collector, |c| c.telemetry.sample_ratio = 0.0);
    let receiver = Receiver::start();
    let endpoint = server.create_endpoint(&receiver.url("/hook"))["id"].as_str().unwrap().to_string();
    let published = server.post("/v1/events", json!({"type": "verification_session.created", "data": {}}));
    assert_eq!(published.status, 200, "{}", published.text);
    let received = receiver.wait_for("/hook", 1, WAIT);
    assert!(received[0].header("traceparent").ends_with("-00"), "not sampled: {:?}", received[0].headers);
    assert!(eventually(WAIT, || server.deliveries(&endpoint).iter().all(|a| a["status"] == "succeeded")));
    // A caller that samples is exported, and it is all that is (the queue goes in order).
    let caller = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .json(&json!({"type": "verification_session.created", "data": {}}))
        .send();
    assert_eq!(caller.status, 200, "{}", caller.text);
    collector.wait_for_trace(TRACE_ID, 3, WAIT);
    assert!(collector.spans().iter().all(|s| s.trace_id() == TRACE_ID), "{:#?}", collector.spans());
}

#[test]
fn a_collector_that_hangs_or_refuses_costs_only_dropped_spans_each_counted() {
    let collector = Collector::start();
    collector.hold();
    let server = exporting_to(&collector, |c| c.telemetry.queue_size = 4);
    let receiver = Receiver::start();
    server.create_endpoint(&receiver.url("/hook"));

    // The collector holds its first export: publishing and delivery go on regardless.
    const EVENTS: usize = 20;
    let started = Instant::now();
    for i in 0..EVENTS {
        let published = server.post("/v1/events", json!({"type": "verification_session.created", "data": {"n": i}}));
        assert_eq!(published.status, 200, "{}", published.text);
    }
    receiver.wait_for("/hook", EVENTS, WAIT);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "publishing and delivering took {took:?}");
    assert!(!collector.requests().is_empty(), "an export is waiting at the collector");
    let queue_full = "stile_telemetry_spans_dropped_total{reason=\"queue_full\"}";
    assert!(eventually(WAIT, || metric(&server.base, queue_full) > 0), "a full queue drops spans");

    // Then it refuses: nothing is exported, and every span is accounted for as dropped
    // (each event: a publish, a fan-out and an attempt).
    collector.refuse_with(503);
    collector.release();
    let total = 3 * EVENTS as u64;
    let dropped = || metric(&server.base, "stile_telemetry_spans_dropped_total");
    assert!(eventually(WAIT, || dropped() == total), "dropped {} of {total}", dropped());
    assert_eq!(metric(&server.base, "stile_telemetry_spans_exported_total"), 0);
    assert!(collector.spans().is_empty());
    assert!(metric(&server.base, "stile_telemetry_spans_dropped_total{reason=\"export_failed\"}") > 0);

    // Once it takes spans again, new ones arrive.
    collector.refuse_with(0);
    let published = server
        .req("POST", "/v1/events")
        .header("traceparent", CALLER)
        .json(&json!({"type": "verification_session.created", "data": {}}))
        .send();
    assert_eq!(published.status, 200, "{}", published.text);
    collector.wait_for_trace(TRACE_ID, 3, WAIT);
}
