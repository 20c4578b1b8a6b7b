//! Configuration: one struct that is both `stile.toml` and its defaults, layered with
//! environment variables (`STILE_<SECTION>_<KEY>`) and CLI flags.
//!
//! Precedence is flag > environment > file > default. Every layer is merged into one TOML
//! table before anything is deserialised, so a bad value is reported once, with the key
//! it belongs to and where it was set, whichever layer it came from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::event_types;
use crate::mode::Mode;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "stile.toml";

mod sections;
mod sources;
mod targets;

pub use sections::*;
pub use targets::{AllowedTarget, ProxyAddress, parse_proxy, parse_resolve};

use sources::{apply_env, apply_flags, read_file};

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
        let telemetry = &self.telemetry;
        if !telemetry.otlp_endpoint.is_empty() && crate::telemetry::traces_url(&telemetry.otlp_endpoint).is_none() {
            return Err((
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL, like http://collector:4318".into(),
            ));
        }
        if !(1..=1_000_000).contains(&telemetry.queue_size) {
            return Err((
                "telemetry.queue_size",
                format!("must be between 1 and 1000000, got {}", telemetry.queue_size),
            ));
        }
        if telemetry.export_interval < Duration::from_millis(10) || telemetry.export_interval > Duration::from_secs(60)
        {
            return Err(("telemetry.export_interval", "must be between 10ms and 1m".into()));
        }
        if !(0.0..=1.0).contains(&telemetry.sample_ratio) {
            return Err(("telemetry.sample_ratio", format!("must be between 0 and 1, got {}", telemetry.sample_ratio)));
        }
        if telemetry.service_name.trim().is_empty() {
            return Err(("telemetry.service_name", "must not be empty".into()));
        }
        if !(100..=1_000_000).contains(&self.events.search_read_budget) {
            return Err((
                "events.search_read_budget",
                format!("must be between 100 and 1000000, got {}", self.events.search_read_budget),
            ));
        }
        let transformations = &self.transformations;
        if transformations.time_limit < Duration::from_millis(1) || transformations.time_limit > Duration::from_secs(10)
        {
            return Err(("transformations.time_limit", "must be between 1ms and 10s".into()));
        }
        if !(4..=4096).contains(&transformations.memory_limit_mb) {
            return Err((
                "transformations.memory_limit_mb",
                format!("must be between 4 and 4096, got {}", transformations.memory_limit_mb),
            ));
        }
        if !(1..=64).contains(&transformations.threads) {
            return Err((
                "transformations.threads",
                format!("must be between 1 and 64, got {}", transformations.threads),
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
        if !d.proxy.is_empty() {
            parse_proxy(&d.proxy).map_err(|err| ("delivery.proxy", err))?;
        }
        if let Some(bad) = d.no_proxy.iter().find(|entry| AllowedTarget::parse(entry).is_none()) {
            return Err(("delivery.no_proxy", format!("`{bad}` is neither a host name, an address nor a network")));
        }
        if !d.ca_file.as_os_str().is_empty() {
            crate::tls::read_roots(&d.ca_file, "the file").map_err(|err| ("delivery.ca_file", err))?;
        }
        if d.max_pause < Duration::from_secs(1) || d.max_pause > Duration::from_secs(3600) {
            return Err(("delivery.max_pause", "must be between 1s and 1h".into()));
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

        let (_ca_dir, not_pem) = write_config("not a certificate\n");
        let ca_file = not_pem.to_str().unwrap();
        let err = Config::load(&Overrides::default(), &env(&[("STILE_DELIVERY_CA_FILE", ca_file)])).unwrap_err().0;
        assert!(err.contains("delivery.ca_file") && err.contains("holds no PEM certificate"), "{err}");

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

        let set = |pairs: &[(&str, &str)]| Config::load(&Overrides::default(), &env(pairs));
        let on = set(&[("STILE_TELEMETRY_OTLP_ENDPOINT", "http://collector:4318")]).unwrap().config.telemetry;
        assert_eq!((on.otlp_endpoint.as_str(), on.service_name.as_str()), ("http://collector:4318", "stile"));
        for (key, bad, says) in [
            ("STILE_TELEMETRY_OTLP_ENDPOINT", "collector:4318", "http://collector:4318"),
            ("STILE_TELEMETRY_QUEUE_SIZE", "0", "between 1 and 1000000"),
            ("STILE_TELEMETRY_EXPORT_INTERVAL", "2m", "between 10ms and 1m"),
            ("STILE_TELEMETRY_SERVICE_NAME", " ", "must not be empty"),
            ("STILE_TELEMETRY_SAMPLE_RATIO", "1.5", "between 0 and 1"),
            ("STILE_TRANSFORMATIONS_TIME_LIMIT", "20s", "between 1ms and 10s"),
            ("STILE_TRANSFORMATIONS_MEMORY_LIMIT_MB", "2", "between 4 and 4096"),
            ("STILE_TRANSFORMATIONS_THREADS", "0", "between 1 and 64"),
            ("STILE_EVENTS_SEARCH_READ_BUDGET", "5", "between 100 and 1000000"),
        ] {
            let err = set(&[(key, bad)]).unwrap_err().0;
            assert!(err.contains(&key[6..].to_lowercase().replacen('_', ".", 1)) && err.contains(says), "{err}");
        }

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
        assert!(err.contains("STILE_SERVER_LISTN") && err.contains("did you mean STILE_SERVER_LISTEN?"), "{err}");
        // A misspelt section too, with the name meant.
        let err = Config::load(&Overrides::default(), &env(&[("STILE_DELIVRY_TIMEOUT", "3s")])).unwrap_err().0;
        assert!(err.contains("STILE_DELIVRY_TIMEOUT") && err.contains("did you mean STILE_DELIVERY_TIMEOUT?"), "{err}");
        // Nothing near: no guess.
        let err = Config::load(&Overrides::default(), &env(&[("STILE_FOO_BAR", "1")])).unwrap_err().0;
        assert!(err.contains("STILE_FOO_BAR") && !err.contains("did you mean"), "{err}");
        // The variables stile's commands, clients and tests read are not config keys, and
        // are accepted; so is anything not starting with STILE_.
        for (name, _) in sources::OTHER_VARIABLES {
            assert!(Config::load(&Overrides::default(), &env(&[(name, "x")])).is_ok(), "{name}");
        }
        assert!(Config::load(&Overrides::default(), &env(&[("STILES_THING", "x"), ("PATH", "/bin")])).is_ok());
        // What Kubernetes sets in every pod for a Service named `stile` (and Docker's links).
        let service = [
            ("STILE_SERVICE_HOST", "10.0.0.1"),
            ("STILE_SERVICE_PORT", "8787"),
            ("STILE_SERVICE_PORT_HTTP", "8787"),
            ("STILE_PORT", "tcp://10.0.0.1:8787"),
            ("STILE_PORT_8787_TCP", "tcp://10.0.0.1:8787"),
            ("STILE_PORT_8787_TCP_ADDR", "10.0.0.1"),
        ];
        assert!(Config::load(&Overrides::default(), &env(&service)).is_ok());
        // The portal's keys are not taken for them.
        let err = Config::load(&Overrides::default(), &env(&[("STILE_PORTAL_COLOUR", "x")])).unwrap_err().0;
        assert!(err.contains("STILE_PORTAL_COLOUR"), "{err}");
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
