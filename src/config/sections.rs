//! The sections of the configuration: one struct each, with its defaults and what each
//! key means (`stile.toml` and docs/configuration.md say the same).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration of a stile server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where and how the server listens and keeps its data.
    pub server: ServerConfig,
    /// How the data file is kept.
    pub store: StoreConfig,
    /// API keys accepted besides the stored ones.
    pub auth: AuthConfig,
    /// How events are delivered to endpoints.
    pub delivery: DeliveryConfig,
    /// How long history is kept.
    pub retention: RetentionConfig,
    /// Which event types `POST /v1/events` accepts.
    pub events: EventsConfig,
    /// Verification session settings.
    pub verification_sessions: VerificationSessionsConfig,
    /// The app portal.
    pub portal: PortalConfig,
    /// `stile listen` sessions.
    pub listen: ListenConfig,
    /// What the server logs, and how.
    pub log: LogConfig,
    /// Where spans are exported.
    pub telemetry: TelemetryConfig,
    /// How endpoints' transformations run.
    pub transformations: TransformationsConfig,
}

/// `[transformations]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformationsConfig {
    /// The longest one run of an endpoint's transformation may take; then it is stopped
    /// and the attempt fails, saying so.
    #[serde(with = "humantime_serde")]
    pub time_limit: Duration,
    /// The most memory one transformation may use, in MiB.
    pub memory_limit_mb: usize,
    /// The threads that run transformations.
    pub threads: usize,
}

impl Default for TransformationsConfig {
    fn default() -> Self {
        let limits = crate::transform::Limits::default();
        Self { time_limit: limits.time, memory_limit_mb: limits.memory / (1024 * 1024), threads: limits.threads }
    }
}

impl TransformationsConfig {
    /// The limits the transformation threads run with.
    pub fn limits(&self) -> crate::transform::Limits {
        crate::transform::Limits {
            time: self.time_limit,
            memory: self.memory_limit_mb * 1024 * 1024,
            threads: self.threads,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OpenTelemetry collector's OTLP/HTTP address (`http://collector:4318`, spans
    /// posted to its `/v1/traces`; a URL with a path is used as it is); empty: no export.
    pub otlp_endpoint: String,
    /// The `service.name` the spans carry.
    pub service_name: String,
    /// The most spans waiting to be exported; more are dropped and counted.
    pub queue_size: usize,
    /// How long a span waits at most before its batch is sent.
    #[serde(with = "humantime_serde")]
    pub export_interval: Duration,
    /// The share (0 to 1) of the traces of publishes without a `traceparent` that are
    /// sampled: exported, and marked sampled to the receivers. A caller's trace keeps the
    /// caller's choice; the events stile publishes itself are always sampled.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "stile".into(),
            queue_size: 4096,
            export_interval: Duration::from_secs(5),
            sample_ratio: 1.0,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Which events are logged, as a `RUST_LOG`-style filter (`info`, or
    /// `warn,stile=debug`). `RUST_LOG`, when set, wins.
    pub filter: String,
    /// `text` for people, `json` (one object per line) for log collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), format: LogFormat::Text }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address the HTTP server binds (`127.0.0.1:8787`).
    pub listen: SocketAddr,
    /// The directory holding the data file; created if missing.
    pub data_dir: PathBuf,
    /// `development` (http:// to loopback allowed) or `production` (https only, private
    /// targets refused).
    pub mode: RunMode,
    /// How long a client may take to send a whole request, head and body, from its first
    /// byte (from the connection's opening, for its first request), before it is answered
    /// 408 and disconnected: slow clients cannot hold connections. Near the connection
    /// cap, requests get at most 2 s (`server::guard`).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// If set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: String,
    /// The server's address as people reach it (behind a proxy: `https://hooks.example.com`),
    /// for the links it hands out (portal sessions); empty: `http://<listen>`.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: PathBuf::from("./data"),
            mode: RunMode::Development,
            request_timeout: Duration::from_secs(30),
            metrics_token: String::new(),
            public_url: String::new(),
        }
    }
}

/// How strict the server is about webhook targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Local use and staging: `http://` is accepted for loopback hosts, `https://` for
    /// any host but link-local and metadata addresses (refused in every mode).
    Development,
    /// Deployed: `https://` only, and targets on private networks are refused.
    Production,
}

impl RunMode {
    /// The name as it is written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Development => "development",
            RunMode::Production => "production",
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys accepted as they are, for demos and CI (`vk_test_...` or `vk_live_...`).
    pub keys: Vec<String>,
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long one attempt may take, connect to last byte, before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The delays before attempts 2, 3, ... after the immediate first attempt.
    #[serde(with = "duration_list")]
    pub retry_schedule: Vec<Duration>,
    /// The most attempts in flight at once, all endpoints together (tasks on the one
    /// delivery thread; the name is from when each was a thread).
    pub workers: usize,
    /// The most attempts in flight to one endpoint at once, for endpoints that set no
    /// `max_in_flight` of their own.
    pub per_endpoint_concurrency: usize,
    /// The longest an answer of 429 or 503 pauses an endpoint (its `Retry-After` is
    /// capped at this; without one the pause grows from 1 s to this).
    #[serde(with = "humantime_serde")]
    pub max_pause: Duration,
    /// Private networks (CIDR) or host names that production mode may deliver to anyway.
    /// Never link-local or metadata addresses: no entry allows those.
    pub allowed_private_targets: Vec<String>,
    /// Host names resolved to fixed addresses instead of through DNS (`"name=address"`),
    /// like curl's `--resolve`: for staging setups and tests.
    pub resolve: Vec<String>,
    /// The demo clock: retry delays and session lifetimes are multiplied by this, so
    /// `0.001` turns 5 minutes into 0.3 s and a whole retry life fits in a demo.
    pub time_scale: f64,
    /// An endpoint whose attempts have all failed for this long is disabled, with the
    /// reason recorded on it.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// An endpoint whose run of failed attempts reaches this length is failing: the
    /// operational endpoints are told (`message.attempt.failing`, then
    /// `message.attempt.recovered` at its next success). 0: never.
    pub failing_after: u32,
    /// A PEM file of certificates trusted as roots for receivers' certificates, besides
    /// the public ones (an internal CA); empty: the public roots only.
    pub ca_file: PathBuf,
    /// The forward proxy every delivery and token request goes through
    /// (`http://[user:password@]host:port`); empty: none.
    pub proxy: String,
    /// Hosts (and their subdomains), addresses and networks (CIDR) connected to directly,
    /// not through `proxy`.
    pub no_proxy: Vec<String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry_schedule: [5 * 60, 30 * 60, 2 * 3600, 5 * 3600].map(Duration::from_secs).to_vec(),
            workers: 64,
            per_endpoint_concurrency: 8,
            max_pause: Duration::from_secs(60),
            allowed_private_targets: Vec::new(),
            resolve: Vec::new(),
            time_scale: 1.0,
            disable_after: Duration::from_secs(5 * 86_400),
            failing_after: 5,
            ca_file: PathBuf::new(),
            proxy: String::new(),
            no_proxy: Vec::new(),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The most memory, in MiB, the data file's page cache may use: enough to hold the
    /// hot pages (queue, recent events, endpoints) keeps the writer off the disk.
    pub cache_mib: usize,
    /// The file holding the key payloads are encrypted with; empty: `payload.key` in the
    /// data directory.
    pub payload_key_file: PathBuf,
    /// Group commit: while publishes arrive often enough that another is expected within
    /// this time, a publish waits up to this long for others to share its commit (and its
    /// fsync). 0 commits each at once.
    #[serde(with = "humantime_serde")]
    pub commit_delay: Duration,
    /// Where the data lives: `redb` (one file in the data directory, one process) or
    /// `postgres` (a database any number of stile processes share).
    pub backend: Backend,
    /// The database, for `backend = "postgres"`: `postgres://user:password@host:port/db`.
    pub postgres_url: DatabaseUrl,
    /// The most connections to the database this process opens.
    pub postgres_pool_size: usize,
    /// How long one statement may run before the database cancels it.
    #[serde(with = "humantime_serde")]
    pub postgres_statement_timeout: Duration,
    /// How long a process's claim on a queued attempt lasts unless renewed: when a
    /// process dies, the attempts it held are made by another after this long.
    #[serde(with = "humantime_serde")]
    pub postgres_claim_lease: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_mib: crate::store::DEFAULT_CACHE_MIB,
            payload_key_file: PathBuf::new(),
            commit_delay: Duration::from_millis(2),
            backend: Backend::Redb,
            postgres_url: DatabaseUrl::default(),
            postgres_pool_size: 16,
            postgres_statement_timeout: Duration::from_secs(30),
            postgres_claim_lease: Duration::from_secs(60),
        }
    }
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One redb file.
    Redb,
    /// A Postgres database.
    Postgres,
}

/// A database URL: it may hold a password, so it never shows in logs or debug output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::postgres::redact_url(&self.0))
    }
}

/// `[portal]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Origins whose pages may show the portal in an `<iframe>`
    /// (`Content-Security-Policy: frame-ancestors`); empty: none may.
    pub frame_ancestors: Vec<String>,
    /// The name in the portal's header for applications that set none; empty: the
    /// application's name.
    pub display_name: String,
    /// An `https://` logo for applications that set none; empty: none.
    pub logo_url: String,
    /// The accent colour (`#rrggbb`) for applications that set none; empty: stile's.
    pub accent_color: String,
}

impl PortalConfig {
    /// The branding applications fall back to.
    pub fn branding(&self) -> crate::store::model::apps::Branding {
        let set = |text: &String| (!text.is_empty()).then(|| text.clone());
        crate::store::model::apps::Branding {
            display_name: set(&self.display_name),
            logo_url: set(&self.logo_url),
            accent_color: set(&self.accent_color),
        }
    }
}

/// `[listen]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// How long a `stile listen` endpoint may go unused (no CLI connected) before it is
    /// removed with its pending deliveries; 0 keeps them.
    #[serde(with = "humantime_serde")]
    pub idle_expiry: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self { idle_expiry: Duration::from_secs(7 * 86_400) }
    }
}

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long events, their delivery attempts and ended verification sessions are kept.
    #[serde(with = "humantime_serde")]
    pub events: Duration,
    /// How many hours the payload of a delivery that failed for good stays available to
    /// resend, for endpoints that do not set their own (0 to 720).
    pub undelivered_payload_hours: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 86_400),
            undelivered_payload_hours: crate::store::model::DEFAULT_UNDELIVERED_HOURS,
        }
    }
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Event types, besides the built-in ones, that applications may publish.
    pub custom_types: Vec<String>,
    /// Event types declared with a description, and optionally a JSON Schema for their
    /// `data` and an example (`[[events.types]]`).
    pub types: Vec<crate::event_types::EventTypeDecl>,
    /// The most events one content search (`GET /v1/events?filter=`) reads per request
    /// (5,000), before it answers with a cursor to go on from.
    pub search_read_budget: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { custom_types: Vec::new(), types: Vec::new(), search_read_budget: 5_000 }
    }
}

/// `[verification_sessions]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationSessionsConfig {
    /// How long a session stays open before it expires by itself.
    #[serde(with = "humantime_serde")]
    pub expires_after: Duration,
}

impl Default for VerificationSessionsConfig {
    fn default() -> Self {
        Self { expires_after: Duration::from_secs(24 * 3600) }
    }
}

/// (De)serialises a list of humantime durations (`["5m", "30m"]`).
mod duration_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|d| humantime::format_duration(*d).to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let items = Vec::<humantime_serde::Serde<Duration>>::deserialize(d)?;
        Ok(items.into_iter().map(|s| s.into_inner()).collect())
    }
}
