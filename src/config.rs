//! Configuration: one struct that is both `stile.toml` and its defaults, layered with
//! environment variables (`STILE_<SECTION>_<KEY>`) and CLI flags.
//!
//! Precedence is flag > environment > file > default. Every layer is merged into one TOML
//! table before anything is deserialised, so a bad value is reported once, with the key
//! it belongs to and where it was set, whichever layer it came from.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event_types;
use crate::mode::Mode;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "stile.toml";

/// Prefix of every environment variable that overrides a config key.
const ENV_PREFIX: &str = "STILE_";

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
    /// The most attempts in flight to one endpoint at once.
    pub per_endpoint_concurrency: usize,
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
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry_schedule: [5 * 60, 30 * 60, 2 * 3600, 5 * 3600].map(Duration::from_secs).to_vec(),
            workers: 64,
            per_endpoint_concurrency: 8,
            allowed_private_targets: Vec::new(),
            resolve: Vec::new(),
            time_scale: 1.0,
            disable_after: Duration::from_secs(5 * 86_400),
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
    pub fn branding(&self) -> crate::store::apps::Branding {
        let set = |text: &String| (!text.is_empty()).then(|| text.clone());
        crate::store::apps::Branding {
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
        Self { events: Duration::from_secs(30 * 86_400), undelivered_payload_hours: 72 }
    }
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Event types, besides the built-in ones, that applications may publish.
    pub custom_types: Vec<String>,
    /// Event types declared with a description, and optionally a JSON Schema for their
    /// `data` and an example (`[[events.types]]`).
    pub types: Vec<crate::event_types::EventTypeDecl>,
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

/// Values given on the command line; each wins over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config PATH`: a file that must exist.
    pub config_path: Option<PathBuf>,
    /// `--listen ADDR`
    pub listen: Option<String>,
    /// `--data-dir DIR`
    pub data_dir: Option<PathBuf>,
    /// `--mode MODE`
    pub mode: Option<RunMode>,
}

/// A configuration and a description of where it came from, for the start-up summary.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged, validated configuration.
    pub config: Config,
    /// "stile.toml", "built-in defaults", plus the environment variables that applied.
    pub source: String,
}

/// A configuration that cannot be used; the message names the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the configuration from the file, the given environment and the flags.
    pub fn load(overrides: &Overrides, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
        let mut origins: HashMap<String, String> = HashMap::new();
        let (mut table, mut source) = read_file(overrides.config_path.as_deref())?;
        for (section, keys) in &table {
            if let toml::Value::Table(keys) = keys {
                for key in keys.keys() {
                    origins.insert(format!("{section}.{key}"), source.clone());
                }
            }
        }

        let applied = apply_env(&mut table, &mut origins, env)?;
        if !applied.is_empty() {
            source.push_str(&format!(" + environment ({})", applied.join(", ")));
        }
        apply_flags(&mut table, &mut origins, overrides);

        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
            let path = err.path().to_string();
            // `delivery.retry_schedule[1]` was set where `delivery.retry_schedule` was.
            let key = path.split('[').next().unwrap_or(&path);
            let origin = origins.get(key).map(|o| format!(" (set in {o})")).unwrap_or_default();
            ConfigError(format!("invalid config value for `{path}`{origin}: {}", err.inner().message()))
        })?;
        config.validate().map_err(|(key, problem)| {
            let origin = origins.get(key).map(|o| format!(" (set in {o})")).unwrap_or_default();
            ConfigError(format!("invalid config value for `{key}`{origin}: {problem}"))
        })?;
        Ok(Loaded { config, source })
    }

    /// `d` on the demo clock (`delivery.time_scale`).
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.delivery.time_scale)
    }

    /// The base of links the server hands out: `server.public_url` without a trailing
    /// slash, else `http://<listen>` (loopback if it listens on every address).
    pub fn public_base(&self) -> String {
        if !self.server.public_url.is_empty() {
            return self.server.public_url.trim_end_matches('/').to_string();
        }
        self.local_base()
    }

    /// `http://<listen>`, with loopback for an unspecified address: where a command on the
    /// same machine reaches the server.
    pub fn local_base(&self) -> String {
        let mut listen = self.server.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}")
    }

    /// How to open the data file (`[store]`).
    pub fn store_options(&self) -> crate::store::StoreOptions {
        let key = &self.store.payload_key_file;
        crate::store::StoreOptions {
            cache_mib: self.store.cache_mib,
            payload_key_file: (!key.as_os_str().is_empty()).then(|| key.clone()),
        }
    }

    /// The path of the redb data file.
    pub fn data_file(&self) -> PathBuf {
        self.server.data_dir.join(crate::store::DATA_FILE_NAME)
    }

    /// Checks what types alone cannot: ranges, formats, and agreement between keys.
    /// Returns the dotted key at fault and the problem.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.server.request_timeout.is_zero() || self.server.request_timeout > Duration::from_secs(300) {
            return Err(("server.request_timeout", "must be between 1ms and 5m".into()));
        }
        if !self.server.public_url.is_empty()
            && !url::Url::parse(&self.server.public_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err((
                "server.public_url",
                "must be an http:// or https:// URL, like https://hooks.example.com".into(),
            ));
        }
        for origin in &self.portal.frame_ancestors {
            if !is_origin(origin) {
                return Err((
                    "portal.frame_ancestors",
                    format!(
                        "`{origin}` is not an origin: use scheme, host and port only, like https://app.example.com"
                    ),
                ));
            }
        }
        if let Some((field, problem)) = self.portal.branding().problem() {
            return Err((
                match field {
                    "display_name" => "portal.display_name",
                    "logo_url" => "portal.logo_url",
                    _ => "portal.accent_color",
                },
                problem,
            ));
        }
        if self.store.commit_delay > Duration::from_millis(100) {
            return Err(("store.commit_delay", "must be at most 100ms".to_string()));
        }
        if self.store.backend == Backend::Postgres {
            let url = &self.store.postgres_url.0;
            if url.is_empty() {
                return Err((
                    "store.postgres_url",
                    "must be set with backend = \"postgres\" (postgres://user:password@host:port/database)".into(),
                ));
            }
            if let Err(err) = crate::store::postgres::check_url(url) {
                return Err(("store.postgres_url", format!("is not a postgres URL: {err}")));
            }
        }
        if !(1..=1000).contains(&self.store.postgres_pool_size) {
            return Err((
                "store.postgres_pool_size",
                format!("must be between 1 and 1000, got {}", self.store.postgres_pool_size),
            ));
        }
        let timeout = self.store.postgres_statement_timeout;
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(600) {
            return Err(("store.postgres_statement_timeout", "must be between 100ms and 10m".into()));
        }
        let lease = self.store.postgres_claim_lease;
        if lease < Duration::from_secs(1) || lease > Duration::from_secs(3600) {
            return Err(("store.postgres_claim_lease", "must be between 1s and 1h".into()));
        }
        if !(1..=65_536).contains(&self.store.cache_mib) {
            return Err(("store.cache_mib", format!("must be between 1 and 65536, got {}", self.store.cache_mib)));
        }
        let d = &self.delivery;
        if d.timeout.is_zero() || d.timeout > Duration::from_secs(600) {
            return Err(("delivery.timeout", "must be between 1ms and 10m".into()));
        }
        if d.retry_schedule.len() > 20 {
            return Err(("delivery.retry_schedule", "at most 20 retries".into()));
        }
        if let Some(bad) = d.retry_schedule.iter().find(|r| r.is_zero() || **r > Duration::from_secs(30 * 86_400)) {
            return Err((
                "delivery.retry_schedule",
                format!("every delay must be between 1ms and 30d, got {}", humantime::format_duration(*bad)),
            ));
        }
        if !(1..=1024).contains(&d.workers) {
            return Err(("delivery.workers", format!("must be between 1 and 1024, got {}", d.workers)));
        }
        if !(1..=1024).contains(&d.per_endpoint_concurrency) {
            return Err((
                "delivery.per_endpoint_concurrency",
                format!("must be between 1 and 1024, got {}", d.per_endpoint_concurrency),
            ));
        }
        for target in &d.allowed_private_targets {
            if AllowedTarget::parse(target).is_none() {
                return Err((
                    "delivery.allowed_private_targets",
                    format!("`{target}` is neither a network in CIDR notation (10.0.0.0/8) nor a host name"),
                ));
            }
        }
        if !(d.time_scale > 0.0 && d.time_scale <= 1.0) {
            return Err(("delivery.time_scale", format!("must be above 0 and at most 1, got {}", d.time_scale)));
        }
        if d.disable_after.is_zero() {
            return Err(("delivery.disable_after", "must be longer than zero".into()));
        }
        for entry in &d.resolve {
            if parse_resolve(entry).is_none() {
                return Err((
                    "delivery.resolve",
                    format!("`{entry}` must be `host=address`, like `hooks.test=127.0.0.1`"),
                ));
            }
        }
        for key in &self.auth.keys {
            let ok = Mode::of_key(key).is_some_and(|m| key.len() > m.key_prefix().len())
                && key.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err((
                    "auth.keys",
                    "every key must start with `vk_test_` or `vk_live_`, followed by printable characters".into(),
                ));
            }
        }
        if self.retention.events.is_zero() {
            return Err(("retention.events", "must be longer than zero".into()));
        }
        if self.retention.undelivered_payload_hours > 720 {
            return Err((
                "retention.undelivered_payload_hours",
                format!("must be between 0 and 720, got {}", self.retention.undelivered_payload_hours),
            ));
        }
        if self.verification_sessions.expires_after.is_zero() {
            return Err(("verification_sessions.expires_after", "must be longer than zero".into()));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            return Err(("log.filter", format!("`{}` is not a valid filter: {err}", self.log.filter)));
        }
        for custom in &self.events.custom_types {
            if let Err(problem) = event_types::check_custom_type(custom) {
                return Err(("events.custom_types", problem));
            }
        }
        if let Err(problem) = event_types::EventTypes::with_declared(&self.events.custom_types, &self.events.types) {
            return Err(("events.types", problem));
        }
        Ok(())
    }
}

/// Whether `text` is an origin as CSP names one: `http(s)://host[:port]`, nothing more.
fn is_origin(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.path() == "/"
            && !text.ends_with('/')
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
    })
}

/// Parses one `delivery.resolve` entry: `host=address`.
pub fn parse_resolve(entry: &str) -> Option<(String, IpAddr)> {
    let (host, address) = entry.split_once('=')?;
    let host = host.trim().to_ascii_lowercase();
    let address = address.trim().trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    matches!(AllowedTarget::parse(&host), Some(AllowedTarget::Host(_))).then_some((host, address))
}

/// One entry of `delivery.allowed_private_targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedTarget {
    /// Every address in this network.
    Network(ipnet::IpNet),
    /// This host name, compared case-insensitively.
    Host(String),
}

impl AllowedTarget {
    /// Parses a CIDR network, a bare IP address, or a host name.
    pub fn parse(text: &str) -> Option<AllowedTarget> {
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Some(AllowedTarget::Network(net));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(AllowedTarget::Network(ipnet::IpNet::from(ip)));
        }
        let host_like = !text.is_empty()
            && text.len() <= 253
            && text
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        host_like.then(|| AllowedTarget::Host(text.to_ascii_lowercase()))
    }
}

/// Reads the config file into a table; no file at the default path means defaults only.
fn read_file(explicit: Option<&Path>) -> Result<(toml::Table, String), ConfigError> {
    let (path, required) = match explicit {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok((toml::Table::new(), "built-in defaults (no stile.toml found)".into()));
        }
        Err(err) => {
            return Err(ConfigError(format!("cannot read config file {}: {err}", path.display())));
        }
    };
    let table = text
        .parse::<toml::Table>()
        .map_err(|err| ConfigError(format!("config file {} is not valid TOML: {err}", path.display())))?;
    Ok((table, path.display().to_string()))
}

/// Applies `STILE_<SECTION>_<KEY>` variables over the table, typed like the key's default.
/// Returns the names of the variables that applied.
fn apply_env(
    table: &mut toml::Table,
    origins: &mut HashMap<String, String>,
    env: &HashMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).expect("the default config serialises to TOML");
    let mut known: BTreeMap<String, (String, String, toml::Value)> = BTreeMap::new();
    for (section, keys) in &defaults {
        let toml::Value::Table(keys) = keys else {
            continue;
        };
        for (key, default) in keys {
            let name = format!("{ENV_PREFIX}{}_{}", section.to_uppercase(), key.to_uppercase());
            known.insert(name, (section.clone(), key.clone(), default.clone()));
        }
    }
    // A variable in a known section but naming no key is a typo that would otherwise be
    // silently ignored.
    let section_prefixes: Vec<String> = defaults.keys().map(|s| format!("{ENV_PREFIX}{}_", s.to_uppercase())).collect();
    let mut names: Vec<&String> = env.keys().collect();
    names.sort();
    for name in names {
        if !known.contains_key(name) && section_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            return Err(ConfigError(format!("unknown environment variable {name}: no such config key")));
        }
    }

    let mut applied = Vec::new();
    for (name, (section, key, default)) in &known {
        let Some(raw) = env.get(name) else { continue };
        let value = env_value(raw, default).map_err(|problem| {
            ConfigError(format!(
                "invalid config value for `{section}.{key}` (set in environment variable {name}): {problem}"
            ))
        })?;
        let section_table = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = section_table else {
            return Err(ConfigError(format!("config key `{section}` must be a table")));
        };
        section_table.insert(key.clone(), value);
        origins.insert(format!("{section}.{key}"), format!("environment variable {name}"));
        applied.push(name.clone());
    }
    Ok(applied)
}

/// Converts an environment string to the TOML type of the key's default value.
fn env_value(raw: &str, default: &toml::Value) -> Result<toml::Value, String> {
    Ok(match default {
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        ),
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| format!("expected a whole number, got `{raw}`"))?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| format!("expected true or false, got `{raw}`"))?)
        }
        toml::Value::Float(_) => {
            toml::Value::Float(raw.trim().parse().map_err(|_| format!("expected a number, got `{raw}`"))?)
        }
        _ => toml::Value::String(raw.to_string()),
    })
}

/// Applies CLI flags over the table.
fn apply_flags(table: &mut toml::Table, origins: &mut HashMap<String, String>, overrides: &Overrides) {
    let mut set = |key: &str, flag: &str, value: String| {
        let server = table.entry("server").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(server) = server {
            server.insert(key.to_string(), toml::Value::String(value));
        }
        origins.insert(format!("server.{key}"), format!("flag {flag}"));
    };
    if let Some(listen) = &overrides.listen {
        set("listen", "--listen", listen.clone());
    }
    if let Some(dir) = &overrides.data_dir {
        set("data_dir", "--data-dir", dir.display().to_string());
    }
    if let Some(mode) = overrides.mode {
        set("mode", "--mode", mode.as_str().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stile.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_shipped_stile_toml_is_the_default_config() {
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/stile.toml")).unwrap();
        let parsed: Config = toml::from_str(&shipped).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let (_dir, path) =
            write_config("[server]\nlisten = \"127.0.0.1:1111\"\ndata_dir = \"/file\"\n[delivery]\nworkers = 3\n");
        let overrides =
            Overrides { config_path: Some(path), listen: Some("127.0.0.1:3333".into()), ..Default::default() };
        let loaded = Config::load(
            &overrides,
            &env(&[("STILE_SERVER_LISTEN", "127.0.0.1:2222"), ("STILE_SERVER_DATA_DIR", "/env")]),
        )
        .unwrap();
        assert_eq!(loaded.config.server.listen.port(), 3333);
        assert_eq!(loaded.config.server.data_dir, PathBuf::from("/env"));
        assert_eq!(loaded.config.delivery.workers, 3);
        assert_eq!(loaded.config.delivery.per_endpoint_concurrency, 8);
        assert!(loaded.source.contains("STILE_SERVER_DATA_DIR"));
    }

    #[test]
    fn env_lists_are_comma_separated_and_durations_use_humantime() {
        let (_dir, path) = write_config("");
        let overrides = Overrides { config_path: Some(path), ..Default::default() };
        let loaded = Config::load(
            &overrides,
            &env(&[
                ("STILE_DELIVERY_RETRY_SCHEDULE", "10ms, 1s,2m"),
                ("STILE_AUTH_KEYS", "vk_test_a,vk_live_b"),
                ("STILE_DELIVERY_WORKERS", "5"),
                ("STILE_VERIFICATION_SESSIONS_EXPIRES_AFTER", "1h 30m"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(
            loaded.delivery.retry_schedule,
            vec![Duration::from_millis(10), Duration::from_secs(1), Duration::from_secs(120)]
        );
        assert_eq!(loaded.auth.keys, vec!["vk_test_a", "vk_live_b"]);
        assert_eq!(loaded.delivery.workers, 5);
        assert_eq!(loaded.verification_sessions.expires_after, Duration::from_secs(5400));
    }

    #[test]
    fn bad_values_name_the_key_and_where_it_was_set() {
        let (_dir, path) = write_config("[delivery]\ntimeout = \"soon\"\n");
        let overrides = Overrides { config_path: Some(path), ..Default::default() };
        let err = Config::load(&overrides, &env(&[])).unwrap_err().0;
        assert!(err.contains("`delivery.timeout`") && err.contains("stile.toml"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_DELIVERY_WORKERS", "many")])).unwrap_err().0;
        assert!(err.contains("delivery.workers") && err.contains("STILE_DELIVERY_WORKERS"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_DELIVERY_WORKERS", "0")])).unwrap_err().0;
        assert!(err.contains("delivery.workers") && err.contains("between 1 and 1024"), "{err}");

        for bad in ["https://app.example.com/", "app.example.com", "https://app.example.com/embed", "ftp://x.example"] {
            let err =
                Config::load(&Overrides::default(), &env(&[("STILE_PORTAL_FRAME_ANCESTORS", bad)])).unwrap_err().0;
            assert!(err.contains("portal.frame_ancestors"), "{bad}: {err}");
        }
        let ok = Config::load(
            &Overrides::default(),
            &env(&[("STILE_PORTAL_FRAME_ANCESTORS", "https://a.example,http://127.0.0.1:3000")]),
        );
        assert_eq!(ok.unwrap().config.portal.frame_ancestors, ["https://a.example", "http://127.0.0.1:3000"]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("types.toml");
        std::fs::write(&path, "[[events.types]]\nname = \"invoice.paid\"\nschema = '{\"type\": 5}'\n").unwrap();
        let err = Config::load(&Overrides { config_path: Some(path), ..Default::default() }, &env(&[])).unwrap_err().0;
        assert!(err.contains("events.types") && err.contains("invoice.paid"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_PORTAL_ACCENT_COLOR", "blue")])).unwrap_err().0;
        assert!(err.contains("portal.accent_color") && err.contains("#1f4b99"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_STORE_CACHE_MIB", "0")])).unwrap_err().0;
        assert!(err.contains("store.cache_mib") && err.contains("between 1 and 65536"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_SERVER_MODE", "prod")])).unwrap_err().0;
        assert!(err.contains("server.mode"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_AUTH_KEYS", "sk_test_x")])).unwrap_err().0;
        assert!(err.contains("auth.keys"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_STORE_COMMIT_DELAY", "1s")])).unwrap_err().0;
        assert!(err.contains("store.commit_delay") && err.contains("at most 100ms"), "{err}");
        let err = Config::load(&Overrides::default(), &env(&[("STILE_STORE_COMMIT_DELAY", "5")])).unwrap_err().0;
        assert!(err.contains("store.commit_delay"), "a duration needs its unit: {err}");
        let err = Config::load(&Overrides::default(), &env(&[("STILE_SERVER_REQUEST_TIMEOUT", "10m")])).unwrap_err().0;
        assert!(err.contains("server.request_timeout") && err.contains("between 1ms and 5m"), "{err}");
        let set = Config::load(&Overrides::default(), &env(&[("STILE_SERVER_REQUEST_TIMEOUT", "5s")])).unwrap();
        assert_eq!(set.config.server.request_timeout, Duration::from_secs(5));
        assert_eq!(Config::default().server.request_timeout, Duration::from_secs(30));
        let off = Config::load(&Overrides::default(), &env(&[("STILE_STORE_COMMIT_DELAY", "0s")])).unwrap();
        assert_eq!(off.config.store.commit_delay, Duration::ZERO);
        assert_eq!(Config::default().store.commit_delay, Duration::from_millis(2));

        let load = |pairs: &[(&str, &str)]| Config::load(&Overrides::default(), &env(pairs));
        let err = load(&[("STILE_STORE_BACKEND", "postgres")]).unwrap_err().0;
        assert!(err.contains("store.postgres_url") && err.contains("must be set"), "{err}");
        let err =
            load(&[("STILE_STORE_BACKEND", "postgres"), ("STILE_STORE_POSTGRES_URL", "postgres://u:pw@h:notaport/db")])
                .unwrap_err()
                .0;
        assert!(err.contains("store.postgres_url") && !err.contains("pw@"), "{err}");
        let err = load(&[("STILE_STORE_BACKEND", "mysql")]).unwrap_err().0;
        assert!(err.contains("store.backend"), "{err}");
        let err = load(&[("STILE_STORE_POSTGRES_CLAIM_LEASE", "0s")]).unwrap_err().0;
        assert!(err.contains("store.postgres_claim_lease"), "{err}");
        let pg =
            load(&[("STILE_STORE_BACKEND", "postgres"), ("STILE_STORE_POSTGRES_URL", "postgres://u:pw@db:5432/stile")])
                .unwrap()
                .config;
        assert_eq!(pg.store.backend, Backend::Postgres);
        assert!(!format!("{:?}", pg.store).contains("pw"), "the password in debug output");
    }

    #[test]
    fn unknown_keys_and_variables_are_refused_not_ignored() {
        let (_dir, path) = write_config("[delivery]\ntimout = \"5s\"\n");
        let overrides = Overrides { config_path: Some(path), ..Default::default() };
        let err = Config::load(&overrides, &env(&[])).unwrap_err().0;
        assert!(err.contains("timout"), "{err}");

        let err = Config::load(&Overrides::default(), &env(&[("STILE_SERVER_LISTN", "x")])).unwrap_err().0;
        assert!(err.contains("STILE_SERVER_LISTN"), "{err}");
        // Variables outside the config sections (like the CLI's STILE_API_KEY) are not ours.
        assert!(Config::load(&Overrides::default(), &env(&[("STILE_API_KEY", "x")])).is_ok());
    }

    #[test]
    fn a_missing_explicit_file_and_broken_toml_are_errors() {
        let overrides = Overrides { config_path: Some("/nonexistent/stile.toml".into()), ..Default::default() };
        assert!(Config::load(&overrides, &env(&[])).unwrap_err().0.contains("/nonexistent/stile.toml"));
        let (_dir, path) = write_config("[server\n");
        let overrides = Overrides { config_path: Some(path), ..Default::default() };
        assert!(Config::load(&overrides, &env(&[])).unwrap_err().0.contains("not valid TOML"));
    }

    #[test]
    fn resolve_entries_are_host_equals_address() {
        assert_eq!(parse_resolve("Hooks.Test=127.0.0.1"), Some(("hooks.test".into(), "127.0.0.1".parse().unwrap())));
        assert_eq!(parse_resolve("h.test=[::1]"), Some(("h.test".into(), "::1".parse().unwrap())));
        assert_eq!(parse_resolve("h.test"), None);
        assert_eq!(parse_resolve("h.test=nowhere"), None);
        assert_eq!(parse_resolve("10.0.0.1=127.0.0.1"), None, "only names are resolved");
        let err = Config::load(&Overrides::default(), &env(&[("STILE_DELIVERY_RESOLVE", "bad")])).unwrap_err().0;
        assert!(err.contains("delivery.resolve"), "{err}");
    }

    #[test]
    fn allowed_targets_parse_as_networks_or_hosts() {
        assert!(matches!(AllowedTarget::parse("10.0.0.0/8"), Some(AllowedTarget::Network(_))));
        assert!(matches!(AllowedTarget::parse("192.168.1.5"), Some(AllowedTarget::Network(_))));
        assert_eq!(AllowedTarget::parse("Hooks.Internal"), Some(AllowedTarget::Host("hooks.internal".into())));
        assert_eq!(AllowedTarget::parse("not a host"), None);
        assert_eq!(AllowedTarget::parse(""), None);
    }
}
