//! The Postgres backend: the same store as the redb file, kept in a PostgreSQL database
//! that any number of stile processes share.
//!
//! Its methods are `async` and awaited by their callers on the callers' own runtimes (the
//! API's workers, the engine's). The connections (tokio-postgres, pooled by deadpool) do
//! their I/O on the store's own small runtime (`OnStoreRuntime`), so a connection never
//! depends on the runtime that first asked for it, which may stop first (the server's
//! workers stop before the engine records its last results). The schema is versioned in
//! `migrations/` and applied at start under an advisory lock (see `migrate.rs`). Each
//! concern's file implements that concern's backend trait for `PgStore`, with the same
//! name as its redb twin.
//!
//! Each write is one transaction. Reads of one row and read-modify-writes lock what they
//! change (`FOR UPDATE`), so two processes changing one endpoint take turns as two
//! threads of one process do with redb's single writer.

use self::cached::Cached;

/// Runs `$body` in a transaction of `$store` (a `&PgStore`) with `$tx` naming the
/// transaction (a `&deadpool_postgres::Transaction`), and commits it: an async block
/// whose output is the body's. A transaction the database aborted for a conflict with
/// another (a serialization failure, a deadlock it broke) is run again, up to
/// [`CONFLICT_RETRIES`] times, so the body must be safe to run again (it gathers its
/// writes afresh each time).
///
/// A macro, not a method taking an async closure: the body stays part of the method's own
/// future, whose `Send` rustc can prove (through an async closure's returned future it
/// cannot yet), and the store's futures run on multi-threaded runtimes.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        async {
            let store: &$crate::store::postgres::PgStore = $store;
            let mut client = store.client().await?;
            let mut tries = 0;
            loop {
                let tx = client.transaction().await?;
                let outcome = match async {
                    let $tx = &tx;
                    $body
                }
                .await
                {
                    Ok(value) => tx.commit().await.map(|()| value).map_err($crate::store::model::StoreError::from),
                    Err(err) => Err(err),
                };
                match outcome {
                    Err(err) if store.rerun_after(&err, &mut tries) => {}
                    outcome => break outcome,
                }
            }
        }
    };
}

/// Runs `$body` once in a transaction of `$store` and commits it, as [`transaction!`]
/// does but never again (for work that cannot run twice, such as a change given as
/// `FnOnce`).
macro_rules! transaction_once {
    ($store:expr, |$tx:ident| $body:expr) => {
        async {
            let store: &$crate::store::postgres::PgStore = $store;
            let mut client = store.client().await?;
            let tx = client.transaction().await?;
            let value = async {
                let $tx = &tx;
                let result: Result<_, $crate::store::model::StoreError> = $body;
                result
            }
            .await?;
            tx.commit().await?;
            Ok::<_, $crate::store::model::StoreError>(value)
        }
    };
}

mod api_keys;
mod app_deletion;
mod apps;
mod attempts;
mod cached;
mod cluster;
mod endpoints;
mod event_types;
mod events;
mod health;
mod idempotency;
mod jobs;
mod listeners;
mod migrate;
mod pagination;
mod portal_sessions;
mod queue;
mod recovery;
mod replays;
mod retention;
mod scheduling;
mod sessions;
mod stats;
#[cfg(test)]
pub(crate) mod tests;
pub mod throwaway;
mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

use super::sealing::{self, Sealer};
use crate::store::model::{OpenError, StoreError};

/// The database's clock, in Unix ms, as SQL.
pub(super) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A transaction of the store, as the rules in [`rules`](crate::store::rules) use it
/// (each rule's primitives are implemented in the file of its concern).
pub(super) struct Tx<'a, C> {
    client: &'a C,
    store: &'a PgStore,
}

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// The most connections this process opens.
    pub pool_size: usize,
    /// How long one statement may run before the database cancels it.
    pub statement_timeout: Duration,
    /// The payload key file (shared by every process on the database).
    pub key_file: PathBuf,
    /// How long a claim on a queue entry lasts unless the process renews it: how long
    /// the attempts a dead process held wait before another process makes them.
    pub claim_lease: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("key_file", &self.key_file)
            .field("claim_lease", &self.claim_lease)
            .finish()
    }
}

/// The URL with its password replaced by `***`, for logs and the start-up summary.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(a postgres URL that does not parse)".to_string(),
    }
}

/// Whether `url` is a postgres URL stile can connect with (its TLS settings included);
/// why not if not.
pub fn check_url(url: &str) -> Result<(), String> {
    let url = tls::TlsUrl::parse(url)?;
    url.client_url.parse::<tokio_postgres::Config>().map(drop).map_err(|err| err.to_string())
}

/// The database a URL names, as `host:port/database` (no user, no password), for people.
pub fn describe_url(url: &str) -> String {
    let parsed = tls::TlsUrl::parse(url).ok().and_then(|url| url.client_url.parse::<tokio_postgres::Config>().ok());
    match parsed {
        Some(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
        }
        None => "(a postgres URL that does not parse)".to_string(),
    }
}

/// A failure of the database underneath the store, kept opaque outside it.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A query failed, or the connection did.
    #[error("postgres: {}", with_causes(.0))]
    Query(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("postgres: no connection: {}", with_causes(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// An error with what caused it: tokio-postgres says only "db error" or "error performing
/// TLS handshake", and the database's message (a refused password, a `pg_hba.conf` rule)
/// or the certificate problem is in its source.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let more = err.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = err.source();
    }
    text
}

impl PgError {
    /// Whether the database is unreachable, restarting, read-only or overloaded (worth a
    /// 503 and a retry later), not a fault of the request or of stile.
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Pool(_) => true,
            PgError::Query(err) => {
                if err.is_closed() {
                    return true;
                }
                match err.code() {
                    None => true, // no SQL state: the connection failed underneath
                    Some(code) => {
                        let class = &code.code()[..2];
                        matches!(class, "08" | "53" | "57")
                            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                            || *code == SqlState::T_R_SERIALIZATION_FAILURE
                            || *code == SqlState::T_R_DEADLOCK_DETECTED
                    }
                }
            }
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Postgres(PgError::Query(err))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StoreError::Postgres(PgError::Pool(err))
    }
}

/// The store in a Postgres database.
pub struct PgStore {
    pool: Pool,
    /// Drives the connections; `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    sealer: Sealer,
    /// `host:port/database`, for people.
    database: String,
    /// How to open connections of its own (the listener's, the leader's).
    config: tokio_postgres::Config,
    /// How its connections are secured (see [`tls`]).
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The connection holding the duties lock, while this process holds it.
    leader: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// See [`PgOptions::claim_lease`].
    claim_lease: Duration,
    /// Its name in queue wake-ups (see [`cluster`]).
    token: String,
    /// Transactions run again after the database aborted them for a conflict.
    conflicts_rerun: std::sync::atomic::AtomicU64,
    /// How many hours an undelivered payload is kept for endpoints that set no window of
    /// their own (`[retention] undelivered_payload_hours`).
    undelivered_hours: std::sync::atomic::AtomicU32,
    /// See `Backend::bear_births`.
    bears_births: std::sync::atomic::AtomicBool,
}

use crate::store::model::DEFAULT_UNDELIVERED_HOURS;

impl PgStore {
    /// Connects, brings the schema up to date (one process at a time), and checks the
    /// payload key against the one the database's payloads are sealed with.
    pub async fn connect(options: &PgOptions) -> Result<PgStore, OpenError> {
        let database = describe_url(&options.url);
        let unusable = |problem: String| OpenError::Postgres { database: database.clone(), problem };
        let url = tls::TlsUrl::parse(&options.url).map_err(|e| unusable(format!("invalid postgres_url: {e}")))?;
        let tls = url.connector().map_err(unusable)?;
        let mut config: tokio_postgres::Config = url
            .client_url
            .parse()
            .map_err(|e: tokio_postgres::Error| unusable(format!("invalid postgres_url: {e}")))?;
        let timeout_ms = options.statement_timeout.as_millis();
        // Statements are prepared once per connection (see `cached`), but planned for their
        // values each time: a generic plan for the claim or a page can be far worse.
        config.options(format!("-c statement_timeout={timeout_ms} -c plan_cache_mode=force_custom_plan"));
        config.application_name("stile");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stile-postgres")
            .enable_all()
            .build()
            .map_err(|e| unusable(format!("cannot start the database runtime: {e}")))?;
        let manager = Manager::from_connect(
            config.clone(),
            OnStoreRuntime { tls: tls.clone(), runtime: runtime.handle().clone() },
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| unusable(format!("cannot make the connection pool: {e}")))?;
        let mut store = PgStore {
            pool,
            runtime: Some(runtime),
            sealer: Sealer::new(&[0; 32]),
            database: database.clone(),
            config,
            tls,
            leader: tokio::sync::Mutex::new(None),
            claim_lease: options.claim_lease,
            token: cluster::new_token(),
            conflicts_rerun: std::sync::atomic::AtomicU64::new(0),
            undelivered_hours: DEFAULT_UNDELIVERED_HOURS.into(),
            bears_births: false.into(),
        };
        migrate::migrate(&store.pool, crate::clock::unix_now()).await.map_err(|e| unusable(e.to_string()))?;
        store.sealer = store.payload_key(&options.key_file).await?;
        let sealed = store.seal_clear_secrets().await.map_err(|e| unusable(e.to_string()))?;
        if sealed > 0 {
            tracing::info!(endpoints = sealed, "endpoint secrets stored in clear by an earlier release are sealed now");
        }
        Ok(store)
    }

    /// `host:port/database`.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The store's runtime, where its connections do their I/O.
    fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("the runtime lives as long as the store").handle()
    }

    /// A connection of its own, outside the pool (the leader's, the listener's).
    async fn own_connection(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, _io) = OnStoreRuntime::open(&self.config, &self.tls, self.runtime()).await?;
        Ok(client)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Counts a transaction the database aborted for a conflict and says whether to run it
    /// again (up to [`CONFLICT_RETRIES`] times in all; `tries` counts them).
    fn rerun_after(&self, err: &StoreError, tries: &mut u32) -> bool {
        if !is_conflict(err) || *tries >= CONFLICT_RETRIES {
            return false;
        }
        tracing::debug!(error = %err, "a transaction aborted for a conflict runs again");
        self.conflicts_rerun.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *tries += 1;
        true
    }

    /// The payload key: the one the database records (which must be in `key_file`), or
    /// for a new database the one in `key_file` (created if absent), recorded now.
    async fn payload_key(&self, key_file: &Path) -> Result<Sealer, OpenError> {
        let init = |err: StoreError| OpenError::Postgres { database: self.database.clone(), problem: err.to_string() };
        let recorded = recorded_key_id(self).await.map_err(init)?;
        let (sealer, created) = sealing::load_or_create_key(key_file, recorded.is_none()).map_err(|err| match err {
            sealing::KeyError::Io(path, io) if io.kind() == std::io::ErrorKind::NotFound => {
                let id = format!("{:016x}", recorded.unwrap_or(0));
                OpenError::Key(sealing::KeyError::Missing { path, id })
            }
            other => OpenError::Key(other),
        })?;
        match recorded {
            Some(expected) if expected != sealer.id() => Err(OpenError::Key(sealing::KeyError::Wrong {
                path: key_file.to_path_buf(),
                found: sealer.key_id(),
                expected: format!("{expected:016x}"),
            })),
            Some(_) => Ok(sealer),
            None => {
                // Another process may have recorded its key meanwhile: the first wins.
                let winner = record_key_id(self, sealer.id()).await.map_err(init)?;
                if winner != sealer.id() {
                    return Err(OpenError::Key(sealing::KeyError::Wrong {
                        path: key_file.to_path_buf(),
                        found: sealer.key_id(),
                        expected: format!("{winner:016x}"),
                    }));
                }
                if created {
                    tracing::info!(path = %key_file.display(), key = %sealer.key_id(), "payload key created: every stile process on this database needs a copy of it");
                }
                Ok(sealer)
            }
        }
    }
}

/// Opens connections whose I/O runs on the store's runtime: the connection and the socket
/// it makes are created there, and its task is spawned there.
struct OnStoreRuntime {
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    runtime: tokio::runtime::Handle,
}

impl OnStoreRuntime {
    /// Connects on `runtime` and leaves the connection's task running there.
    async fn open(
        config: &tokio_postgres::Config,
        tls: &tokio_postgres_rustls::MakeRustlsConnect,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let (config, tls) = (config.clone(), tls.clone());
        let connecting = runtime.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            let io = tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "a postgres connection ended");
                }
            });
            Ok((client, io))
        });
        match connecting.await {
            Ok(connected) => connected,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime goes only with the store, which is in use here.
            Err(_) => unreachable!("the store's runtime stopped while the store was in use"),
        }
    }
}

impl deadpool_postgres::Connect for OnStoreRuntime {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let config = config.clone();
        Box::pin(async move { OnStoreRuntime::open(&config, &self.tls, &self.runtime).await })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime's thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How many times a transaction aborted by a conflict is run again.
const CONFLICT_RETRIES: u32 = 3;

/// Whether the database aborted a transaction for a conflict with another.
fn is_conflict(err: &StoreError) -> bool {
    let StoreError::Postgres(PgError::Query(err)) = err else { return false };
    err.code()
        .is_some_and(|code| *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A 128-bit id as the uuid column that holds it.
fn uuid(id: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(id)
}

/// A uuid column's value as the 128-bit id.
fn id_of(value: uuid::Uuid) -> u128 {
    value.as_u128()
}

/// The `stile_meta` key of the payload key's id.
const PAYLOAD_KEY_ID: &str = "payload_key_id";

/// The id of the key the database's payloads are sealed with, if it records one.
pub(super) async fn recorded_key_id(store: &PgStore) -> Result<Option<u64>, StoreError> {
    let client = store.client().await?;
    let row = client.q_opt("SELECT value FROM stile_meta WHERE key = $1", &[&PAYLOAD_KEY_ID]).await?;
    Ok(row.map(|row| row.get::<_, i64>(0) as u64))
}

/// Records `id` as the payload key unless one is recorded already; returns the one
/// recorded (the first process to start wins).
pub(super) async fn record_key_id(store: &PgStore, id: u64) -> Result<u64, StoreError> {
    let client = store.client().await?;
    client
        .exec(
            "INSERT INTO stile_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&PAYLOAD_KEY_ID, &(id as i64)],
        )
        .await?;
    let row = client.q_one("SELECT value FROM stile_meta WHERE key = $1", &[&PAYLOAD_KEY_ID]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}
