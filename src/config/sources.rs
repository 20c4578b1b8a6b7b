//! Where configuration values come from, merged into one TOML table before anything is
//! deserialised: the file, the environment (`STILE_<SECTION>_<KEY>`) and the flags.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{Config, ConfigError, DEFAULT_CONFIG_FILE, Overrides};

/// Prefix of every environment variable that overrides a config key.
const ENV_PREFIX: &str = "STILE_";

/// The `STILE_*` variables that are not config keys, with what reads each: every other
/// `STILE_*` variable must name a config key, so a misspelt one stops start-up instead of
/// leaving a default in force.
pub(super) const OTHER_VARIABLES: &[(&str, &str)] = &[
    ("STILE_CONFIG", "the config file's path (every command's --config)"),
    ("STILE_API_KEY", "the API key of `stile trigger`, `stile listen` and @stile/node"),
    ("STILE_API_BASE", "the server @stile/node talks to"),
    ("STILE_ADMIN_TOKEN", "the admin token of `stile backup`"),
    ("STILE_WEBHOOK_SECRET", "the endpoint secret of the example receivers"),
    ("STILE_DB_PASSWORD", "the database password of packaging/compose.yaml"),
    ("STILE_TEST_BACKEND", "the backend the integration tests run on"),
    ("STILE_VERIFIER_PYTHON", "the Python of the tests' reference signature libraries"),
    ("STILE_DOCS_SCREENSHOTS", "the browser tests' screenshots for docs/"),
    ("STILE_CHROMIUM", "the browser tests' Chromium"),
    ("STILE_CHROMEDRIVER", "the browser tests' ChromeDriver"),
    ("STILE_POSTGRES_BIN", "the tests' PostgreSQL binaries"),
    ("STILE_BIN", "the binary @stile/node's tests run"),
    ("STILE_TEST_LOAD_EVENTS", "the size of the load tests"),
    ("STILE_BENCH_BIN", "the binary the benchmark measures"),
    ("STILE_BENCH_KEEP", "the benchmark's kept data"),
    ("STILE_BENCH_PID_FILE", "the benchmark's server process id file"),
];

/// Whether `name` is one of the variables Kubernetes (a Service named `stile`) and
/// Docker's links set for a service, which stile does not read: `STILE_SERVICE_HOST`,
/// `STILE_SERVICE_PORT...`, `STILE_PORT` and `STILE_PORT_<port>_TCP...`.
fn is_service_link(name: &str) -> bool {
    name.starts_with("STILE_SERVICE_") || name == "STILE_PORT" || name.starts_with("STILE_PORT_")
}

/// Reads the config file into a table; no file at the default path means defaults only.
pub(super) fn read_file(explicit: Option<&Path>) -> Result<(toml::Table, String), ConfigError> {
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
pub(super) fn apply_env(
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
    // Any other `STILE_*` variable is a typo that would otherwise be silently ignored.
    let mut names: Vec<&String> = env.keys().filter(|n| n.starts_with(ENV_PREFIX)).collect();
    names.sort();
    for name in names {
        if !known.contains_key(name)
            && !OTHER_VARIABLES.iter().any(|(other, _)| other == name)
            && !is_service_link(name)
        {
            let candidates = known.keys().map(String::as_str).chain(OTHER_VARIABLES.iter().map(|(n, _)| *n));
            let hint = nearest(name, candidates).map(|n| format!(" (did you mean {n}?)")).unwrap_or_default();
            return Err(ConfigError(format!(
                "unknown environment variable {name}: no such config key{hint}; every STILE_* variable must be one (docs/configuration.md)"
            )));
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

/// The name among `candidates` nearest to `name`, if near enough to be the one meant.
fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let (distance, best) = candidates.map(|c| (strsim::levenshtein(name, c), c)).min()?;
    (distance <= 3.max(name.len() / 5)).then_some(best)
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
pub(super) fn apply_flags(table: &mut toml::Table, origins: &mut HashMap<String, String>, overrides: &Overrides) {
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
