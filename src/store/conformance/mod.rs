//! The store's behaviour, checked once against both backends: each test here runs on a
//! redb file and on a new database of the throwaway Postgres cluster (skipped, loudly,
//! where PostgreSQL is not installed; failed under `CI=true`). One file per concern, named
//! as the backends' files are; what only one backend has (file layouts, several processes
//! on one database) is tested beside that backend. The service's tests of rules above
//! the store use the same harness.

mod api_keys;
mod app_deletion;
mod apps;
mod attempts;
mod endpoints;
mod event_types;
mod events;
mod idempotency;
mod portal_sessions;
mod queue;
mod recovery;
mod replays;
mod retention;
mod sessions;
mod stats;

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use std::time::Duration;

use crate::ids::AppId;
use crate::mode::Mode;
use crate::store::model::events::test_event;
use crate::store::model::{
    AppRecord, AttemptResult, Cursor, EndpointRecord, FailureRun, HealthVerdict, NewEvent, Owner, Page, PageRequest,
    QueueKey, RecordPolicy,
};

use super::postgres::throwaway::ThrowawayPostgres;
use super::postgres::{PgOptions, PgStore};
use super::{QueueWrites, Store};

/// A store of one backend, as the engine holds it (with its queue writes), on data of its
/// own.
pub(crate) struct Backend {
    /// `redb` or `postgres`.
    pub name: &'static str,
    store: QueueWrites,
    /// Where the data file (redb) or the payload key (Postgres) is.
    dir: tempfile::TempDir,
    /// The database (Postgres).
    options: Option<PgOptions>,
}

impl std::ops::Deref for Backend {
    type Target = QueueWrites;

    fn deref(&self) -> &QueueWrites {
        &self.store
    }
}

impl Backend {
    /// The same data opened again, as by the next start of the server.
    pub async fn reopen(self) -> Backend {
        let Backend { name, store, dir, options } = self;
        drop(store); // a redb file is open once at a time
        let store = match &options {
            None => Store::open(dir.path()).unwrap(),
            Some(options) => Store::Postgres(Box::new(PgStore::connect(options).await.unwrap())),
        };
        Backend { name, store: store.into_shared().1, dir, options }
    }

    /// Whether this is the redb backend.
    pub fn is_redb(&self) -> bool {
        self.options.is_none()
    }
}

/// Options for a new, empty database on the shared throwaway cluster, with the payload
/// key in `dir`; `None` (after a loud line) where PostgreSQL is not installed.
pub(super) fn fresh_database(dir: &std::path::Path) -> Option<PgOptions> {
    let cluster = ThrowawayPostgres::shared_for_test()?;
    let url = cluster.new_database().expect("create a database");
    Some(PgOptions {
        url,
        pool_size: 4,
        statement_timeout: Duration::from_secs(10),
        key_file: dir.join("payload.key"),
        claim_lease: Duration::from_secs(60),
    })
}

/// A new store of each backend: a redb file in a temporary directory, and a new database
/// of the throwaway cluster where PostgreSQL is installed.
pub(super) async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let redb = Store::open(dir.path()).unwrap();
    let mut stores = vec![Backend { name: "redb", store: redb.into_shared().1, dir, options: None }];
    let dir = tempfile::tempdir().unwrap();
    if let Some(options) = fresh_database(dir.path()) {
        let store = Store::Postgres(Box::new(PgStore::connect(&options).await.unwrap()));
        stores.push(Backend { name: "postgres", store: store.into_shared().1, dir, options: Some(options) });
    }
    stores
}

/// Runs `test` on a new store of each backend; a failure says which backend it was on
/// (after every backend has run, so a difference shows whole).
pub(crate) async fn each_backend(test: impl AsyncFn(Backend)) {
    let mut failed = Vec::new();
    for backend in backends().await {
        let name = backend.name;
        if let Err(panic) = AssertUnwindSafe(test(backend)).catch_unwind().await {
            let message = panic.downcast_ref::<String>().map(String::as_str);
            let message = message.or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("a panic");
            failed.push(format!("on {name}: {message}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A delivery policy for tests (the engine's is `crate::delivery`'s, above the store):
/// `retries` retries, a second apart; an endpoint disabled at its `disable_at`th failure
/// in a row (never if `None`); undelivered payloads kept `undelivered_hours` unless the
/// endpoint says otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestPolicy {
    pub retries: u32,
    pub disable_at: Option<u32>,
    pub undelivered_hours: u32,
}

/// Two retries, never disabling, undelivered payloads kept an hour.
pub(crate) const TWO_RETRIES: TestPolicy = TestPolicy { retries: 2, disable_at: None, undelivered_hours: 1 };

/// No retries: a failure is for good.
pub(crate) const NO_RETRIES: TestPolicy = TestPolicy { retries: 0, disable_at: None, undelivered_hours: 0 };

impl RecordPolicy for TestPolicy {
    fn retry_delay(&self, number: u32, _: Option<Duration>) -> Option<Duration> {
        (number <= self.retries).then_some(Duration::from_secs(1))
    }

    fn health(&self, run: Option<FailureRun>, result: &AttemptResult) -> HealthVerdict {
        let run = (!result.succeeded).then(|| FailureRun {
            since_ms: run.map_or(result.attempted_at_ms, |r| r.since_ms),
            failures: run.map_or(1, |r| r.failures + 1),
        });
        let disable = run.zip(self.disable_at).filter(|(run, at)| run.failures >= *at).map(|_| "failing".to_string());
        HealthVerdict { run, disable }
    }

    fn undelivered_retention(&self, endpoint_hours: Option<u32>) -> Duration {
        Duration::from_secs(u64::from(endpoint_hours.unwrap_or(self.undelivered_hours)) * 3600)
    }
}

/// A new application of `mode`, besides the default one.
async fn another_app(store: &QueueWrites, mode: Mode) -> Owner {
    let record = app(mode, None);
    store.create_app(record.clone()).await.unwrap().unwrap();
    Owner { app: record.id, mode }
}

/// An application of `mode` with `uid`, not stored.
fn app(mode: Mode, uid: Option<&str>) -> AppRecord {
    AppRecord {
        id: AppId::new(),
        mode,
        name: "an app".into(),
        uid: uid.map(str::to_string),
        metadata: Default::default(),
        default: false,
        created: 0,
        branding: Default::default(),
    }
}

/// An endpoint of `owner` subscribed to `event_type`, stored.
pub(crate) async fn hook(store: &QueueWrites, owner: Owner, event_type: &str) -> EndpointRecord {
    let endpoint = EndpointRecord::for_test(owner, "https://example.com/hook", event_type);
    store.insert_endpoint(endpoint.clone()).await.unwrap();
    endpoint
}

/// `n` events of `owner` of type `invoice.paid`, a millisecond apart from `at_ms`.
pub(crate) fn invoices(owner: Owner, n: u64, at_ms: u64) -> Vec<NewEvent> {
    (0..n).map(|i| test_event(owner, "invoice.paid", serde_json::json!({ "n": i }), at_ms + i)).collect()
}

/// `n` events of `owner` ([`invoices`]) published at `now_ms` to its endpoints, each
/// delivery failed for good at once.
pub(crate) async fn failed_invoices(store: &QueueWrites, owner: Owner, n: u64, now_ms: u64) -> Vec<NewEvent> {
    let events = invoices(owner, n, now_ms);
    let none: std::sync::Arc<[AttemptResult]> = std::sync::Arc::from(&[][..]);
    store.publish_and_record(std::sync::Arc::from(&events[..]), none, now_ms, NO_RETRIES).await.unwrap();
    let mut failures = Vec::new();
    for entry in store.due_entries(None, now_ms + n, 100, Vec::new()).await.unwrap() {
        failures.push(result(store, entry.key, false, now_ms).await);
    }
    store
        .publish_and_record(std::sync::Arc::from(&[][..]), std::sync::Arc::from(failures), now_ms, NO_RETRIES)
        .await
        .unwrap();
    events
}

/// The result of the attempt `key` names, made at `at_ms` (its endpoint looked up).
pub(crate) async fn result(store: &QueueWrites, key: QueueKey, succeeded: bool, at_ms: u64) -> AttemptResult {
    let job = store.jobs(vec![key.attempt()]).await.unwrap().pop().flatten().expect("a pending attempt");
    AttemptResult::for_test(key, job.attempt.endpoint_id, succeeded, at_ms)
}

/// A request for the first page of a list, `limit` long.
pub(super) fn start<Id>(limit: usize) -> PageRequest<Id> {
    PageRequest { limit, cursor: Cursor::Start }
}

/// The ids of every page of a list, `limit` at a time, newest first: walked towards the
/// oldest from `from` (`Start` or `After`), or towards the newest from a `Before`.
async fn walk<Id: Copy, T>(
    limit: usize,
    from: Cursor<Id>,
    page: &impl AsyncFn(PageRequest<Id>) -> Page<T>,
    id: impl Fn(&T) -> Id,
) -> Vec<Id> {
    let (mut out, mut cursor) = (Vec::new(), from);
    for _ in 0..10_000 {
        let found = page(PageRequest { limit, cursor }).await;
        let ids: Vec<Id> = found.items.iter().map(&id).collect();
        match cursor {
            Cursor::Before(_) => {
                out.splice(0..0, ids.iter().copied());
            }
            _ => out.extend(&ids),
        }
        if !found.has_more {
            return out;
        }
        cursor = match cursor {
            Cursor::Before(_) => Cursor::Before(ids[0]),
            _ => Cursor::After(*ids.last().unwrap()),
        };
    }
    panic!("a list never ended");
}

/// Every page of a list, both ways, against `expected` (newest first): forwards from the
/// start, and backwards from `oldest`, the oldest item of the unfiltered list.
pub(crate) async fn assert_walks<Id: Copy + PartialEq + std::fmt::Debug, T>(
    what: &str,
    expected: &[Id],
    oldest: Id,
    page: impl AsyncFn(PageRequest<Id>) -> Page<T>,
    id: impl Fn(&T) -> Id,
) {
    for limit in [1, 3, 100] {
        assert_eq!(walk(limit, Cursor::Start, &page, &id).await, expected, "{what} forwards, {limit} a page");
        let newer: Vec<Id> = expected.iter().copied().filter(|i| *i != oldest).collect();
        assert_eq!(walk(limit, Cursor::Before(oldest), &page, &id).await, newer, "{what} backwards, {limit} a page");
    }
}
