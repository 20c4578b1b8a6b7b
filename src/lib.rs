//! stile: a self-hosted webhook server in one binary, with its data in one redb file or in
//! a Postgres database shared by any number of its processes.
//!
//! [`prepare`] opens the store and settles the API keys; [`serve`] (from [`server`]) runs
//! the HTTP server on a listener the caller bound until the caller's shutdown future
//! completes. `main` and the integration tests both start servers this way.

pub mod admin;
pub mod api;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod content_filter;
pub mod dashboard;
pub mod delivery;
pub mod error;
pub mod event_types;
pub mod ids;
pub mod lifecycle;
pub mod listen;
pub mod metrics;
pub mod mode;
pub mod operational;
pub mod payload;
pub mod retention;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod service;
pub mod store;
pub mod table;
pub mod target_policy;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod transform;
pub mod trigger;
pub mod wakeup;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

pub use crate::server::serve;

use crate::api::AppState;
use crate::clock::Clock;
use crate::config::Config;
use crate::ids::AppId;
use crate::mode::Mode;
use crate::service::ApiKeys;
use crate::store::Store;
use crate::store::model::ApiKeyRecord;
use crate::store::model::OpenError;
use crate::store::model::StoreError;

/// Why a server could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data file could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing the data file failed at start-up.
    #[error("cannot start on the data file: {0}")]
    Store(#[from] StoreError),
    /// The admin token file could not be read or created.
    #[error("cannot read or create the admin token {0}: {1}")]
    AdminToken(std::path::PathBuf, std::io::Error),
    /// A declared event type cannot be used (a schema that does not compile, ...).
    #[error("invalid event type catalogue: {0}")]
    EventTypes(String),
}

/// A server ready to serve.
pub struct Prepared {
    /// The state the API runs on.
    pub state: AppState,
    /// The test key created because the store had none and none were configured; it is
    /// shown once, at this start, and never again.
    pub first_key: Option<String>,
}

/// Opens the store `config` names: the redb file in the data directory, or the Postgres
/// database (the payload key file in the data directory either way, unless
/// `payload_key_file` says otherwise). Configuration only describes the store; this is
/// where it is opened.
pub async fn open_store(config: &Config) -> Result<store::Store, store::OpenError> {
    let options = config.store_options();
    let data_dir = &config.server.data_dir;
    match config.store.backend {
        config::Backend::Redb => store::Store::open_with(data_dir, &options),
        config::Backend::Postgres => {
            store::file_modes::create_private_dir(data_dir)
                .map_err(|e| store::OpenError::CreateDir(data_dir.clone(), e))?;
            let pg = store::postgres::PgOptions {
                url: config.store.postgres_url.0.clone(),
                pool_size: config.store.postgres_pool_size,
                statement_timeout: config.store.postgres_statement_timeout,
                key_file: options.key_file(data_dir),
                claim_lease: config.store.postgres_claim_lease,
            };
            store::postgres::PgStore::connect(&pg).await.map(|pg| store::Store::Postgres(Box::new(pg)))
        }
    }
}

/// Opens the data file and loads the API keys, creating a first test key when there is
/// no key at all.
pub async fn prepare(config: Config) -> Result<Prepared, StartError> {
    prepare_with_clock(config, Clock::system()).await
}

/// Like [`prepare`], with the engine and API reading time from `clock` (tests give a
/// manual one and advance it).
pub async fn prepare_with_clock(config: Config, clock: Clock) -> Result<Prepared, StartError> {
    // Checked before anything is opened: `Config::load` refuses such a catalogue too, but
    // a `Config` built in code has not been through it.
    let event_types = crate::event_types::EventTypes::with_declared(&config.events.custom_types, &config.events.types)
        .map_err(StartError::EventTypes)?;
    let store = open_store(&config).await?;
    store.set_undelivered_hours(config.retention.undelivered_payload_hours);
    for skipped in event_types.load(store.event_types().await?) {
        tracing::warn!("{skipped}");
    }
    let admin_token = admin::load_or_create_token(&config.server.data_dir)
        .map_err(|e| StartError::AdminToken(admin::token_path(&config.server.data_dir), e))?;
    let mut stored = store.api_keys().await?;
    let mut first_key = None;
    if stored.is_empty() && config.auth.keys.is_empty() {
        let key = create_api_key(&store, Mode::Test, clock.now()).await?;
        stored = store.api_keys().await?;
        first_key = Some(key);
    }
    let keys = ApiKeys::new(&config.auth.keys, &stored);
    let (store, queue) = store.into_shared();
    let metrics = Arc::new(metrics::Metrics::new());
    let engine = delivery::Engine::start(queue, clock, &config, Arc::clone(&metrics)).await?;
    let default_apps = store.default_apps().await?;
    let shared_store = store.is_shared();
    let state = AppState::new(config, event_types, store, keys, engine, metrics, admin_token, default_apps);
    if shared_store {
        follow_shared_state(&state);
    }
    Ok(Prepared { state, first_key })
}

/// How often a process on a shared database looks for event types and API keys other
/// processes created or changed.
const SHARED_STATE_RELOAD: Duration = Duration::from_secs(2);

/// On a database other processes share, keeps what this process holds in memory up to
/// date with what they change: the event type catalogue (types are never deleted, only
/// archived) and the accepted API keys (created with `stile keys create`, revoked, or
/// dropped with their application), until the server's store is gone.
fn follow_shared_state(state: &AppState) {
    let store = Arc::downgrade(&state.store);
    let catalogue = Arc::downgrade(&state.event_types);
    let keys = Arc::downgrade(&state.keys);
    let configured = state.config.auth.keys.clone();
    state.engine.spawn(async move {
        let mut seen = None;
        let mut seen_keys = None;
        loop {
            tokio::time::sleep(SHARED_STATE_RELOAD).await;
            let (Some(store), Some(catalogue), Some(keys)) = (store.upgrade(), catalogue.upgrade(), keys.upgrade())
            else {
                return;
            };
            match store.api_keys().await {
                Ok(stored) if seen_keys.as_ref() != Some(&stored) => {
                    keys.replace(&configured, &stored);
                    seen_keys = Some(stored);
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "cannot reload the API keys"),
            }
            match store.event_types().await {
                Ok(records) if seen.as_ref() != Some(&records) => {
                    let _writes = catalogue.lock_writes().await;
                    for skipped in catalogue.load(records.clone()) {
                        tracing::debug!("{skipped}");
                    }
                    seen = Some(records);
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "cannot reload the event type catalogue"),
            }
        }
    });
}

/// Creates and stores a new API key, made at `now` (Unix seconds); returns the key, which
/// is not stored anywhere.
pub async fn create_api_key(store: &Store, mode: Mode, now: i64) -> Result<String, StoreError> {
    create_api_key_for(store, mode, None, now).await
}

/// Like [`create_api_key`], for a key restricted to one application of `mode` when `app`
/// is given (the caller has checked that it is one).
pub async fn create_api_key_for(store: &Store, mode: Mode, app: Option<AppId>, now: i64) -> Result<String, StoreError> {
    let key = secrets::new_api_key(mode);
    let record = ApiKeyRecord { prefix: secrets::api_key_shown_prefix(&key), mode, created: now, app };
    store.insert_api_key(secrets::hash_api_key(&key), record).await?;
    Ok(key)
}
