//! Span export: the publish, its fan-out and each delivery attempt, sent to an
//! OpenTelemetry collector over OTLP/HTTP (protobuf) when `[telemetry] otlp_endpoint` is
//! set.
//!
//! The spans are the trace context of `trace.rs` made visible: the publish span has the
//! event's span id (a child of the caller's span when the request carried a
//! `traceparent`), and each attempt's span has the id its request's `traceparent`
//! carried, so a collector shows the receiver's own spans under stile's.
//!
//! The hot paths only build a small [`Span`] record and `try_send` it into a bounded
//! queue; one thread of its own turns records into OpenTelemetry's span data and exports
//! them in batches with `opentelemetry-otlp`. A full queue or a failed export drops spans
//! and counts them (`stile_telemetry_spans_dropped_total`); nothing else waits on the
//! collector. The SDK's own batch processor is not used because it keeps its drop count
//! to itself. Off (the default), nothing is built and no thread runs.

mod http_client;
mod spans;

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use spans::{AttemptSpan, PublishSpanRecord, Span};

use crate::config::TelemetryConfig;
use crate::metrics::{DropReason, Metrics};
use crate::trace::EventTrace;

/// The most spans in one export request (the OpenTelemetry SDK's default batch size).
const MAX_BATCH: usize = 512;

/// How long one export request may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the export thread is sent.
enum Message {
    /// A span to export.
    Span(Box<Span>),
    /// Export everything queued before this now, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where a server's spans go: nowhere (export off), or a bounded queue read by the export
/// thread, which ends once the last handle is dropped (after exporting what is queued).
pub struct Telemetry {
    queue: Option<SyncSender<Message>>,
    dropped: Family<DropReason, Counter>,
}

impl Telemetry {
    /// No export: every span is skipped before it is built.
    pub fn off() -> Telemetry {
        Telemetry { queue: None, dropped: Family::default() }
    }

    /// Export as `config` says (off when it names no endpoint), counted in `metrics`.
    pub fn start(config: &TelemetryConfig, metrics: &Metrics) -> Result<Telemetry, String> {
        if config.otlp_endpoint.is_empty() {
            return Ok(Telemetry::off());
        }
        let url = traces_url(&config.otlp_endpoint).ok_or("telemetry.otlp_endpoint is not an http(s) URL")?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(http_client::UreqClient::new(EXPORT_TIMEOUT))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the OTLP exporter: {e}"))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let (queue, spans) = std::sync::mpsc::sync_channel(config.queue_size);
        let export = Export {
            exporter,
            scope: InstrumentationScope::builder("stile").with_version(env!("CARGO_PKG_VERSION")).build(),
            interval: config.export_interval,
            exported: metrics.spans_exported.clone(),
            dropped: metrics.spans_dropped.clone(),
            url: shown(&url),
            failing: false,
        };
        std::thread::Builder::new()
            .name("stile-otlp".into())
            .spawn(move || export.run(spans))
            .map_err(|e| format!("cannot start the span export thread: {e}"))?;
        tracing::info!(collector = %shown(&url), "exporting spans over OTLP/HTTP");
        Ok(Telemetry { queue: Some(queue), dropped: metrics.spans_dropped.clone() })
    }

    /// Whether the spans of `trace` are exported: export is on and the trace is sampled
    /// (a caller's `traceparent` with the sampled flag off keeps its trace out).
    pub fn exports(&self, trace: &EventTrace) -> bool {
        self.queue.is_some() && trace.sampled
    }

    /// Queues `span` for export; a full queue drops it, counted.
    pub fn send(&self, span: Span) {
        let Some(queue) = &self.queue else { return };
        let spans = span.count();
        let reason = match queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => DropReason::QUEUE_FULL,
            Err(TrySendError::Disconnected(_)) => DropReason::EXPORT_FAILED,
        };
        self.dropped.get_or_create(&reason).inc_by(spans);
    }

    /// Exports what is queued now and waits for it, at most `within` (a server stopping
    /// sends its last spans).
    pub async fn flush(&self, within: Duration) {
        let Some(queue) = &self.queue else { return };
        let deadline = tokio::time::Instant::now() + within;
        let (done, exported) = tokio::sync::oneshot::channel();
        let mut message = Message::Flush(done);
        loop {
            match queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(again)) if tokio::time::Instant::now() < deadline => {
                    message = again;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return,
            }
        }
        let _ = tokio::time::timeout_at(deadline, exported).await;
    }
}

/// Where spans are posted for the collector address `endpoint`: its `/v1/traces` when it
/// has no path (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read), the URL as it is otherwise (as
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). `None`: not an http(s) URL with a host.
pub fn traces_url(endpoint: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(endpoint).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    if url.path() == "/" {
        url.set_path("/v1/traces");
    }
    Some(url)
}

/// The collector's address as logs show it: without a credential its user part or query
/// may carry.
fn shown(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.to_string()
}

/// The export thread's side: batches spans and sends each batch.
struct Export {
    exporter: opentelemetry_otlp::SpanExporter,
    scope: InstrumentationScope,
    interval: Duration,
    exported: Counter,
    dropped: Family<DropReason, Counter>,
    url: String,
    /// Whether the last export failed (a failure is logged when it starts, not per batch).
    failing: bool,
}

impl Export {
    /// Sends a batch when it is full or its first span has waited `interval`, until every
    /// handle is gone; then sends what is left.
    fn run(mut self, spans: Receiver<Message>) {
        // The exporter's future needs no reactor: the HTTP client blocks this thread.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
            tracing::error!("cannot start the span export thread's runtime; spans are dropped");
            return;
        };
        let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
        let mut due: Option<Instant> = None;
        loop {
            let wait = due.map_or(Duration::from_secs(3600), |due| due.saturating_duration_since(Instant::now()));
            match spans.recv_timeout(wait) {
                Ok(Message::Span(span)) => {
                    batch.push(*span);
                    due.get_or_insert_with(|| Instant::now() + self.interval);
                    if batch.len() >= MAX_BATCH {
                        self.export(&runtime, &mut batch);
                        due = None;
                    }
                }
                Ok(Message::Flush(done)) => {
                    self.export(&runtime, &mut batch);
                    due = None;
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.export(&runtime, &mut batch);
                    due = None;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.export(&runtime, &mut batch);
                    return;
                }
            }
        }
    }

    /// Exports `batch` (emptying it); a failure drops its spans, counted.
    fn export(&mut self, runtime: &tokio::runtime::Runtime, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let data: Vec<_> = batch.drain(..).flat_map(|span| span.into_data(&self.scope)).collect();
        let count = data.len() as u64;
        match runtime.block_on(self.exporter.export(data)) {
            Ok(()) => {
                self.exported.inc_by(count);
                if std::mem::take(&mut self.failing) {
                    tracing::info!(collector = %self.url, "span export works again");
                }
            }
            Err(err) => {
                self.dropped.get_or_create(&DropReason::EXPORT_FAILED).inc_by(count);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(collector = %self.url, error = %err, "cannot export spans; they are dropped until the collector answers");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_address_without_a_path_gets_the_traces_path() {
        let url = |s| traces_url(s).map(|u| u.to_string());
        assert_eq!(url("http://collector:4318").as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(url("https://otel.example/").as_deref(), Some("https://otel.example/v1/traces"));
        assert_eq!(url("http://c:4318/custom/traces").as_deref(), Some("http://c:4318/custom/traces"));
        for bad in ["", "collector:4318", "ftp://c/", "http://", "grpc://c:4317"] {
            assert_eq!(url(bad), None, "{bad:?}");
        }
    }
}
