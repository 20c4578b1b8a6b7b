//! Prometheus metrics: counters the engine and API bump as things happen, and gauges
//! read from the store when `/metrics` is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `succeeded` (a 2xx in time) or `failed`.
    pub outcome: &'static str,
}

/// The state of an endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointState {
    /// `healthy`, `degraded` (enabled, latest attempts failing) or `disabled`.
    pub state: &'static str,
}

/// Why deliveries wait although they are due.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HoldReason {
    /// `max_in_flight`, `rate_limit` or `paused` (after a 429, or 503 with `Retry-After`).
    pub reason: &'static str,
}

/// The state of the store's database connections.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolState {
    /// `in_use`, `idle`, or `waiting` (requests waiting for a connection).
    pub state: &'static str,
}

/// Why spans were not exported.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropReason {
    /// `queue_full` (more spans waited than `[telemetry] queue_size`) or `export_failed`
    /// (the collector refused them or could not be reached).
    pub reason: &'static str,
}

impl DropReason {
    /// The export queue was full.
    pub const QUEUE_FULL: DropReason = DropReason { reason: "queue_full" };
    /// The collector did not take them.
    pub const EXPORT_FAILED: DropReason = DropReason { reason: "export_failed" };
}

/// Every metric stile exports.
pub struct Metrics {
    registry: Registry,
    /// Events stored (published through the API or emitted by sessions).
    pub events: Counter,
    /// Delivery attempts made, by outcome.
    pub attempts: Family<Outcome, Counter>,
    /// How long attempts took, in seconds.
    pub attempt_seconds: Histogram,
    /// Retries scheduled after failed attempts.
    pub retries_scheduled: Counter,
    /// Attempts waiting in the queue (set at scrape time).
    pub queue_depth: Gauge,
    /// How overdue the oldest queued attempt is, in seconds (set at scrape time).
    pub oldest_due_seconds: Gauge<f64, AtomicU64>,
    /// Endpoints by status (set at scrape time).
    pub endpoints: Family<EndpointState, Gauge>,
    /// The data file's size in bytes (set at scrape time).
    pub store_bytes: Gauge,
    /// How long the oldest due attempt no process has claimed has waited, in seconds.
    pub claim_lag_seconds: Gauge<f64, AtomicU64>,
    /// Postgres connections of this process by state (set at scrape time).
    pub pool: Family<PoolState, Gauge>,
    /// Postgres transactions this process ran again after the database aborted them for
    /// a deadlock or a serialization failure (brought up to the store's count at scrape
    /// time).
    pub conflicts_rerun: Counter,
    /// Answers of 429 (or 503 with `Retry-After`) that paused an endpoint; the attempt
    /// went back to its queue unrecorded.
    pub refusals: Counter,
    /// Requests sent once more, at once, on a new connection because the receiver closed
    /// the kept-alive one they went out on without an answer (`delivery::reused`).
    pub resent: Counter,
    /// Due deliveries held back by their endpoint's flow, by reason (set by each pass of
    /// the scheduler that holds any, and when none is held).
    pub held: Family<HoldReason, Gauge>,
    /// On Postgres, the endpoints this process is the sender of (each endpoint's flow is
    /// kept by one process at a time).
    pub sending_to: Gauge,
    /// Deliveries not made because the endpoint's content filter refused the event.
    pub filtered: Counter,
    /// Spans the collector took.
    pub spans_exported: Counter,
    /// Spans dropped, by reason.
    pub spans_dropped: Family<DropReason, Counter>,
    /// Publishes and delivery results the writer committed together, per commit: how
    /// well group commit shares each commit (and its fsync) under the load at hand.
    pub commit_jobs: Histogram,
    /// How long the writer's commits took (writing and committing one batch), in seconds.
    pub commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics, registered under the `stile_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stile");
        let metrics = Self {
            events: Counter::default(),
            attempts: Family::default(),
            // 1 ms to ~65 s.
            attempt_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            retries_scheduled: Counter::default(),
            queue_depth: Gauge::default(),
            oldest_due_seconds: Gauge::default(),
            endpoints: Family::default(),
            store_bytes: Gauge::default(),
            claim_lag_seconds: Gauge::default(),
            pool: Family::default(),
            conflicts_rerun: Counter::default(),
            refusals: Counter::default(),
            resent: Counter::default(),
            held: Family::default(),
            sending_to: Gauge::default(),
            filtered: Counter::default(),
            spans_exported: Counter::default(),
            spans_dropped: Family::default(),
            // 1 to 2,048 (the writer's largest batch).
            commit_jobs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            // 0.1 ms to ~0.8 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            registry: Registry::default(),
        };
        registry.register("events_published", "Events stored, published or emitted", metrics.events.clone());
        registry.register("delivery_attempts", "Delivery attempts made, by outcome", metrics.attempts.clone());
        registry.register(
            "delivery_attempt_duration_seconds",
            "How long delivery attempts took",
            metrics.attempt_seconds.clone(),
        );
        registry.register(
            "retries_scheduled",
            "Retries scheduled after failed attempts",
            metrics.retries_scheduled.clone(),
        );
        registry.register(
            "writer_commit_jobs",
            "Publishes and delivery results committed together, per commit of the writer",
            metrics.commit_jobs.clone(),
        );
        registry.register(
            "writer_commit_duration_seconds",
            "How long the writer took to write and commit one batch",
            metrics.commit_seconds.clone(),
        );
        registry.register("queue_depth", "Delivery attempts waiting in the queue", metrics.queue_depth.clone());
        registry.register(
            "queue_oldest_due_seconds",
            "How long the oldest queued attempt has been due (0 if none is)",
            metrics.oldest_due_seconds.clone(),
        );
        registry.register(
            "endpoints",
            "Webhook endpoints by state: healthy, degraded (latest attempts failing) or disabled",
            metrics.endpoints.clone(),
        );
        registry.register(
            "store_bytes",
            "Size of the store (the data file, or the Postgres database)",
            metrics.store_bytes.clone(),
        );
        registry.register(
            "queue_claim_lag_seconds",
            "How long the oldest due attempt that no process has claimed has waited (0 if none)",
            metrics.claim_lag_seconds.clone(),
        );
        registry.register(
            "store_pool_connections",
            "This process's Postgres connections: in_use, idle, and requests waiting for one",
            metrics.pool.clone(),
        );
        registry.register(
            "store_conflicts_rerun",
            "Postgres transactions run again after the database aborted them for a deadlock or a serialization failure",
            metrics.conflicts_rerun.clone(),
        );
        registry.register(
            "delivery_refusals",
            "Answers of 429, or 503 with Retry-After, that paused their endpoint (not recorded as attempts)",
            metrics.refusals.clone(),
        );
        registry.register(
            "delivery_requests_resent",
            "Requests sent once more on a new connection because the receiver closed the kept-alive one they went out on without an answer",
            metrics.resent.clone(),
        );
        registry.register(
            "deliveries_held",
            "Due deliveries waiting for their endpoint's flow: max_in_flight, rate_limit, or paused",
            metrics.held.clone(),
        );
        registry.register(
            "endpoints_sending",
            "Endpoints this process is the one sender of (Postgres; 0 with one process on redb)",
            metrics.sending_to.clone(),
        );
        registry.register(
            "deliveries_filtered",
            "Deliveries not made because the subscribed endpoint's content filter refused the event",
            metrics.filtered.clone(),
        );
        registry.register(
            "telemetry_spans_exported",
            "Spans sent to the OTLP collector and answered 2xx ([telemetry] otlp_endpoint); a partial rejection it reports is logged, not counted",
            metrics.spans_exported.clone(),
        );
        registry.register(
            "telemetry_spans_dropped",
            "Spans not exported: queue_full (more waited than [telemetry] queue_size) or export_failed",
            metrics.spans_dropped.clone(),
        );
        Self { registry, ..metrics }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
