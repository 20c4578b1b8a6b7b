//! An OpenTelemetry collector's OTLP/HTTP trace receiver: `POST /v1/traces` with a
//! protobuf `ExportTraceServiceRequest`, decoded with the protocol's own generated
//! messages (never stile's code) and kept span by span. It can be held (requests wait
//! until released) and told to refuse (503).

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::eventually;

/// One span as the collector received it.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The resource's `service.name`.
    pub service: String,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The span.
    pub span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Exported {
    /// The trace id in hex.
    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }

    /// The span id in hex.
    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }

    /// The parent's span id in hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex::encode(&self.span.parent_span_id)
    }

    /// The attribute `key`'s value as text (strings as they are, integers in decimal);
    /// `None` if the span has no such attribute.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        Value::BoolValue(flag) => Some(flag.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[derive(Default)]
struct State {
    spans: Mutex<Vec<Exported>>,
    requests: Mutex<Vec<String>>,
    held: AtomicBool,
    refusing: AtomicU16,
}

/// The collector, on an ephemeral loopback port in a thread of its own.
pub struct Collector {
    /// `http://127.0.0.1:PORT` (spans go to its `/v1/traces`).
    pub base: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// A collector that takes every export.
    pub fn start() -> Collector {
        let state = Arc::new(State::default());
        let shared = web::Data::from(Arc::clone(&state));
        let (base, stop, thread) = super::receiver::serve(move |app| {
            _ = app.app_data(shared.clone()).route("/v1/traces", web::post().to(take));
        });
        Collector { base, state, stop: Some(stop), thread: Some(thread) }
    }

    /// Holds every request until [`Collector::release`].
    pub fn hold(&self) {
        self.state.held.store(true, Ordering::SeqCst);
    }

    /// Lets held requests (and later ones) be answered.
    pub fn release(&self) {
        self.state.held.store(false, Ordering::SeqCst);
    }

    /// Answers `status` instead of taking the spans (0: takes them).
    pub fn refuse_with(&self, status: u16) {
        self.state.refusing.store(status, Ordering::SeqCst);
    }

    /// Every span taken so far.
    pub fn spans(&self) -> Vec<Exported> {
        self.state.spans.lock().unwrap().clone()
    }

    /// The `content-type` of each request received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits (up to `deadline`) until at least `n` spans of trace `trace_id` were taken;
    /// returns them.
    pub fn wait_for_trace(&self, trace_id: &str, n: usize, deadline: Duration) -> Vec<Exported> {
        let of_trace = || self.spans().into_iter().filter(|s| s.trace_id() == trace_id).collect::<Vec<_>>();
        let got = eventually(deadline, || of_trace().len() >= n);
        let spans = of_trace();
        assert!(got, "expected {n} spans of trace {trace_id} within {deadline:?}, got {spans:#?}");
        spans
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.release();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn take(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    state.requests.lock().unwrap().push(content_type.to_string());
    while state.held.load(Ordering::SeqCst) {
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    let refusing = state.refusing.load(Ordering::SeqCst);
    if refusing != 0 {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(refusing).unwrap())
            .body("refused on purpose");
    }
    let Ok(export) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().body("not an ExportTraceServiceRequest");
    };
    let mut spans = state.spans.lock().unwrap();
    for resource in export.resource_spans {
        let service =
            resource.resource.as_ref().and_then(|r| attribute(&r.attributes, "service.name")).unwrap_or_default();
        for scoped in resource.scope_spans {
            let scope = scoped.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            for span in scoped.spans {
                spans.push(Exported { service: service.clone(), scope: scope.clone(), span });
            }
        }
    }
    // An empty ExportTraceServiceResponse: every span accepted.
    HttpResponse::Ok().content_type("application/x-protobuf").body(Vec::<u8>::new())
}
