//! The store as the rest of stile sees it: one type, [`Store`], whatever keeps the data.
//!
//! Every method here is the whole interface between the store and the engine, the API and
//! the CLI, and each one goes to the backend that holds the data. A backend implements
//! each of them with the same name, arguments and meaning (so a new one is checked by the
//! compiler against this list); what a method means is documented on the redb backend's
//! method, the reference. Methods that only make sense for one data file (its path,
//! compaction, a file backup) are written out below the list, each saying what another
//! backend does instead.

use std::path::Path;

use crate::event_types::EventTypeRecord;
use crate::ids::{AppId, DeliveryId, EndpointId, EventId, PortalSessionId, VerificationSessionId};
use crate::mode::Mode;

use super::{QueueWrites, RedbStore, StoreOptions};
use crate::store::model::{
    ApiKeyRecord, AppDeletion, AppPurge, AppRecord, AttemptRecord, AttemptResult, AttemptStatus, Cutoffs, DefaultApps,
    DeliveryStats, DueEntry, EndpointFilter, EndpointRecord, EndpointUpdated, EventFilter, IdempotencyBegin,
    IdempotencyRecord, Job, ListError, ListenRequest, MetricsSnapshot, NewEvent, OpenError, Owner, Page, PageRequest,
    PortalSessionRecord, PruneCursor, Pruned, Published, QueueKey, RecordPolicy, Recovery, Resent, RetryNow, Revoked,
    Scheduled, SessionChange, SessionChanged, SessionRecord, StoreError, StoredEvent, UidTaken, Written,
};
use crate::store::redb::{BackupError, BackupSummary};

/// The store: the data of one stile deployment, in whichever backend keeps it.
pub enum Store {
    /// One redb file in the data directory (the default; one process).
    Redb(RedbStore),
    /// A Postgres database (any number of processes).
    Postgres(Box<super::postgres::PgStore>),
}

impl Store {
    /// The backend the methods written by [`seam!`] go to.
    fn backends(&self) -> &Store {
        self
    }
}

/// Writes the methods of `Store` (or of [`QueueWrites`], the engine's handle on the queue
/// writes) from their signatures: each calls the backend's method of the same name with
/// the same arguments.
macro_rules! seam {
    ($on:ty; $(
        $(#[$attr:meta])*
        $vis:vis fn $name:ident $(<$($generic:ident),*>)? (&self $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)?;
    )*) => {
        impl $on {
            $(
                $(#[$attr])*
                $vis fn $name $(<$($generic),*>)? (&self $(, $arg: $ty)*) $(-> $ret)? {
                    match self.backends() {
                        Store::Redb(store) => store.$name($($arg),*),
                        Store::Postgres(store) => store.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

seam! { Store;
    // Keys and applications.
    /// Stores an API key by its hash.
    pub fn insert_api_key(&self, hash: &[u8; 32], record: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Every stored API key, by hash.
    pub fn api_keys(&self) -> Result<Vec<([u8; 32], ApiKeyRecord)>, StoreError>;
    /// Revokes the stored key shown with `prefix`.
    pub fn revoke_api_key(&self, prefix: &str) -> Result<Revoked, StoreError>;
    /// The default application of each mode, made on first use.
    pub fn default_apps(&self) -> Result<DefaultApps, StoreError>;
    /// Creates an application unless its uid is taken.
    pub fn create_app(&self, record: &AppRecord) -> Result<Result<(), UidTaken>, StoreError>;
    /// An application of `mode` by id or uid.
    pub fn find_app(&self, mode: Mode, name: &str) -> Result<Option<AppRecord>, StoreError>;
    /// Changes an application in one transaction.
    pub fn update_app(&self, mode: Mode, id: AppId, change: impl FnOnce(&mut AppRecord)) -> Result<Result<Option<AppRecord>, UidTaken>, StoreError>;
    /// A page of `mode`'s applications.
    pub fn list_apps(&self, mode: Mode, request: PageRequest<AppId>) -> Result<Page<AppRecord>, ListError>;
    /// An application of `mode` by id.
    pub fn app(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, StoreError>;
    /// Purges the data of deleted applications, a batch at a time.
    pub fn purge_deleted_apps(&self, limit: usize, settled_before_ms: u64) -> Result<AppPurge, StoreError>;
    /// The default application of `mode`, for unit tests.
    #[cfg(test)]
    pub(crate) fn test_owner(&self, mode: Mode) -> Owner;

    // Endpoints.
    /// Stores a new endpoint.
    pub fn insert_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError>;
    /// An endpoint of `owner`.
    pub fn endpoint(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;
    /// Changes an endpoint in one transaction.
    pub fn update_endpoint(&self, owner: Owner, id: EndpointId, change: impl FnOnce(&mut EndpointRecord)) -> Result<Option<EndpointRecord>, StoreError>;
    /// A page of `owner`'s endpoints that match `filter`.
    pub fn list_endpoints(&self, owner: Owner, request: PageRequest<EndpointId>, filter: &EndpointFilter) -> Result<Page<EndpointRecord>, ListError>;
    /// The endpoint a `stile listen` client receives on, made by `make` the first time.
    pub fn listener_endpoint(&self, owner: Owner, key_hash: &[u8; 32], request: &ListenRequest, make: impl FnOnce() -> EndpointRecord) -> Result<(EndpointRecord, bool), StoreError>;
    /// Records that a listener endpoint was in use at `now`.
    pub fn touch_listener(&self, owner: Owner, id: EndpointId, now: i64) -> Result<(), StoreError>;
    /// Listener endpoints unused since `cutoff`.
    pub fn idle_listeners(&self, cutoff: i64) -> Result<Vec<(Owner, EndpointId)>, StoreError>;

    // The event type catalogue.
    /// Every stored event type.
    pub fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError>;
    /// Stores a new event type; `false` if the name is taken.
    pub fn create_event_type(&self, record: &EventTypeRecord) -> Result<bool, StoreError>;
    /// Replaces a stored event type.
    pub fn replace_event_type(&self, record: &EventTypeRecord) -> Result<(), StoreError>;

    // Events, deliveries and their history.
    /// An event of `owner`.
    pub fn event(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, StoreError>;
    /// A page of `owner`'s events that match `filter`.
    pub fn list_events(&self, owner: Owner, request: PageRequest<EventId>, filter: &EventFilter) -> Result<Page<StoredEvent>, ListError>;
    /// Records a test ping made outside the queue, with its event.
    pub fn record_test_ping(&self, event: &NewEvent, record: &AttemptRecord) -> Result<(), StoreError>;
    /// A page of an endpoint's attempts, optionally of one status.
    pub fn list_attempts(&self, owner: Owner, endpoint: EndpointId, request: PageRequest<DeliveryId>, status: Option<AttemptStatus>) -> Result<Page<AttemptRecord>, ListError>;
    /// One attempt of an endpoint.
    pub fn attempt(&self, owner: Owner, endpoint: EndpointId, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError>;
    /// An event's attempts, up to `limit`, and whether there are more.
    pub fn event_attempts(&self, owner: Owner, event: EventId, limit: usize) -> Result<(Vec<AttemptRecord>, bool), StoreError>;
    /// Overwrites (or removes) an attempt's stored bytes, for unit tests of bad records.
    #[cfg(test)]
    pub(crate) fn put_raw_attempt_for_test(&self, id: DeliveryId, bytes: Option<&[u8]>);

    // The queue (the engine's).
    /// Queue entries due by `until_ms`, after `after`, up to `limit`.
    pub fn due_entries(&self, after: Option<QueueKey>, until_ms: u64, limit: usize) -> Result<Vec<DueEntry>, StoreError>;
    /// When the first entry after `after` is due.
    pub fn next_due_after(&self, after: Option<QueueKey>) -> Result<Option<u64>, StoreError>;
    /// How many entries the queue holds.
    pub fn queue_depth(&self) -> Result<u64, StoreError>;
    /// What to send for each attempt, read in one snapshot.
    pub fn jobs(&self, attempt_ids: &[DeliveryId]) -> Result<Vec<Option<Job>>, StoreError>;
    /// Removes a queue entry behind the engine's back, for unit tests.
    #[cfg(test)]
    pub(crate) fn drop_queue_entry_for_test(&self, key: QueueKey);

    // Verification sessions.
    /// A session of `owner`.
    pub fn session(&self, owner: Owner, id: VerificationSessionId) -> Result<Option<SessionRecord>, StoreError>;
    /// When the next session expires.
    pub fn next_session_expiry(&self) -> Result<Option<u64>, StoreError>;
    /// A page of `owner`'s sessions.
    pub fn list_sessions(&self, owner: Owner, request: PageRequest<VerificationSessionId>) -> Result<Page<SessionRecord>, ListError>;

    // Portal sessions and idempotency.
    /// Stores a portal session by its token's hash.
    pub fn insert_portal_session(&self, hash: &[u8; 32], record: &PortalSessionRecord) -> Result<(), StoreError>;
    /// A portal session by its token's hash.
    pub fn portal_session(&self, hash: &[u8; 32]) -> Result<Option<PortalSessionRecord>, StoreError>;
    /// Ends a portal session of `owner`'s application.
    pub fn revoke_portal_session(&self, owner: Owner, id: PortalSessionId) -> Result<bool, StoreError>;
    /// Begins a request with an idempotency key: its stored answer, or leave to run.
    pub fn begin_idempotent(&self, owner: Owner, key: &str, fingerprint: &str, now: i64) -> Result<IdempotencyBegin, StoreError>;
    /// Lets go of a key whose request stored no answer.
    pub fn abandon_idempotent(&self, owner: Owner, key: &str, fingerprint: &str, since: i64) -> Result<(), StoreError>;
    /// Stores the answer to an idempotency key.
    pub fn put_idempotency_record(&self, owner: Owner, key: &str, record: &IdempotencyRecord) -> Result<(), StoreError>;

    // Retention, statistics and health.
    /// Removes history older than the cutoffs, a batch at a time.
    pub fn prune(&self, cutoffs: Cutoffs, cursor: &mut PruneCursor, limit: usize) -> Result<Pruned, StoreError>;
    /// The counts the metrics endpoint reports.
    pub fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError>;
    /// Delivery statistics of `owner` over a time range.
    pub fn delivery_stats(&self, owner: Owner, since: i64, until: i64, bucket_seconds: i64, failures: usize) -> Result<DeliveryStats, StoreError>;
    /// Whether the store answers (the health check).
    pub fn check(&self) -> Result<(), StoreError>;
}

seam! { QueueWrites;
    /// Deletes an application: it is gone from the API now, its data purged later.
    pub fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError>;
    /// Changes an endpoint and, when asked, puts its parked deliveries back in the queue.
    pub fn update_endpoint_and_resume(&self, owner: Owner, id: EndpointId, now_ms: u64, resume: bool, change: impl FnOnce(&mut EndpointRecord)) -> Result<Option<EndpointUpdated>, StoreError>;
    /// Deletes an endpoint and cancels what it had queued.
    pub fn delete_endpoint(&self, owner: Owner, id: EndpointId, now: i64) -> Result<bool, StoreError>;
    /// Queues again the failed deliveries of an endpoint since a time.
    pub fn recover_endpoint(&self, owner: Owner, id: EndpointId, since: i64, dry_run: bool, now_ms: u64, default_hours: u32) -> Result<Option<Recovery>, StoreError>;
    /// Stores events and queues their first attempts, in one commit.
    pub fn publish_events(&self, events: &[NewEvent], now_ms: u64) -> Result<(Vec<Published>, Scheduled), StoreError>;
    /// Publishes events and records attempt results, in one commit (the engine's writer).
    pub fn publish_and_record(&self, events: &[NewEvent], results: &[AttemptResult], now_ms: u64, policy: &impl RecordPolicy) -> Result<Written, StoreError>;
    /// Queues an event again, to one endpoint or to all it went to.
    pub fn resend_event(&self, owner: Owner, id: EventId, endpoint: Option<EndpointId>, now_ms: u64, default_hours: u32) -> Result<Resent, StoreError>;
    /// Queues a failed or pending attempt to be made now.
    pub fn retry_now(&self, owner: Owner, endpoint: EndpointId, id: DeliveryId, now_ms: u64) -> Result<RetryNow, StoreError>;
    /// Takes entries whose endpoint is not deliverable out of the queue.
    pub fn park(&self, keys: &[QueueKey], deliverable: impl Fn(&EndpointRecord) -> bool) -> Result<Scheduled, StoreError>;
    /// Puts parked entries whose endpoint is deliverable again back in the queue.
    pub fn unpark(&self, now_ms: u64) -> Result<Scheduled, StoreError>;
    /// Puts one endpoint's parked entries back in the queue.
    pub fn unpark_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError>;
    /// Stores a new session with its first event.
    pub fn create_session(&self, session: &SessionRecord, event: &NewEvent, expires_ms: u64, now_ms: u64) -> Result<SessionChanged, StoreError>;
    /// Moves a session and publishes the event of the move, in one commit.
    pub fn change_session<R>(&self, owner: Owner, id: VerificationSessionId, now_ms: u64, change: impl FnOnce(&mut SessionRecord) -> Result<NewEvent, R>) -> Result<SessionChange<R>, StoreError>;
    /// Expires sessions due by `now_ms`, a batch at a time.
    pub fn expire_due_sessions<R>(&self, now_ms: u64, limit: usize, expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R>) -> Result<(usize, Scheduled), StoreError>;
}

impl Store {
    /// Opens (or creates) the redb data file in `dir` with the default settings.
    pub fn open(dir: &Path) -> Result<Store, OpenError> {
        RedbStore::open(dir).map(Store::Redb)
    }

    /// Opens (or creates) the redb data file in `dir` with these settings.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Store, OpenError> {
        RedbStore::open_with(dir, options).map(Store::Redb)
    }

    /// The redb data file's path (`None` on Postgres), for what reports its size.
    pub fn data_file(&self) -> Option<&Path> {
        match self {
            Store::Redb(store) => Some(store.path()),
            Store::Postgres(_) => None,
        }
    }

    /// Where the data is, for people: the data file, or `postgres host:port/database`
    /// (never a password).
    pub fn describe(&self) -> String {
        match self {
            Store::Redb(store) => format!("data file  {}", store.path().display()),
            Store::Postgres(store) => format!("database   postgres {}", store.database()),
        }
    }

    /// Makes what is committed durable now (redb commits retention batches without
    /// fsync; every Postgres commit is durable already).
    pub fn persist(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(store) => store.persist(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Seals and opens what is stored sealed (payloads, responses, endpoint secrets)
    /// with the payload key.
    pub fn sealer(&self) -> &super::sealing::Sealer {
        match self {
            Store::Redb(store) => store.sealer(),
            Store::Postgres(store) => store.sealer(),
        }
    }

    /// Rewrites the data file to release free pages (`stile compact`).
    pub fn compact(self) -> Result<bool, StoreError> {
        match self {
            Store::Redb(store) => store.compact(),
            Store::Postgres(_) => Err(StoreError::Unsupported(
                "`stile compact` rewrites a redb data file; on Postgres, autovacuum reclaims space (or run VACUUM)",
            )),
        }
    }

    /// How often the scheduler must renew its claims on the queue entries it holds
    /// (Postgres); `None`: entries are not claimed (redb, one process).
    pub fn claim_renewal(&self) -> Option<std::time::Duration> {
        match self {
            Store::Redb(_) => None,
            Store::Postgres(store) => Some(store.claim_renewal()),
        }
    }

    /// Extends the claims on the queue entries this process holds, and its hold on the
    /// listener endpoints it still has a CLI for.
    pub fn renew_claims(&self, held: &[DeliveryId], listening: &[EndpointId]) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(store) => store.renew_claims(held, listening),
        }
    }

    /// Records that this process holds listener endpoint `id`'s `stile listen` connection,
    /// so other processes on a shared store hand it the endpoint's attempts rather than
    /// park them (redb: one process, nothing to record).
    pub fn hold_listener(&self, id: EndpointId) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(store) => store.hold_listener(id),
        }
    }

    /// Records that this process no longer holds listener endpoint `id`'s connection.
    pub fn release_listener(&self, id: EndpointId) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(store) => store.release_listener(id),
        }
    }

    /// Whether other processes may write this store too (Postgres): what this process
    /// keeps in memory of it must then be followed or not kept.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// How many transactions this process ran again after the database aborted them for
    /// a conflict, on Postgres.
    pub fn conflicts_rerun(&self) -> Option<u64> {
        match self {
            Store::Redb(_) => None,
            Store::Postgres(store) => Some(store.conflicts_rerun()),
        }
    }

    /// This process's database connections (in use, idle, waiting for one), on Postgres.
    pub fn pool_status(&self) -> Option<(usize, usize, usize)> {
        match self {
            Store::Redb(_) => None,
            Store::Postgres(store) => Some(store.pool_status()),
        }
    }

    /// Gives up the claims on queue entries this process loaded but will not make now.
    pub fn release_claims(&self, entries: &[DeliveryId]) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(store) => store.release_claims(entries),
        }
    }

    /// Calls `wake` when another process queues attempts (Postgres; with redb no other
    /// process can).
    pub fn on_queue_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
        if let Store::Postgres(store) = self {
            store.on_queue_change(wake);
        }
    }

    /// Whether this process does the duties one process does for all (retention,
    /// purging deleted applications): always with redb; on Postgres, the one process
    /// holding their lock.
    pub fn lead(&self) -> Result<bool, StoreError> {
        match self {
            Store::Redb(_) => Ok(true),
            Store::Postgres(store) => store.lead(),
        }
    }

    /// Writes a consistent copy of the data file to `path` (`stile backup`).
    pub fn backup_to(&self, path: &Path) -> Result<BackupSummary, BackupError> {
        match self {
            Store::Redb(store) => store.backup_to(path),
            Store::Postgres(_) => Err(BackupError::Store(StoreError::Unsupported(
                "this server keeps its data in Postgres: back it up with pg_dump (or the database's own backups), not `stile backup`",
            ))),
        }
    }
}
