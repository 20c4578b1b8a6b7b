//! The contract between the store and its backends: one trait per concern, implemented in
//! the file of that name in `redb/` and in `postgres/`. Each method is documented here, once.
//!
//! `backend!` writes each trait and, from the same list, the [`Store`] method (or, for a
//! write that queues, the [`QueueWrites`] method) that calls the backend's. The traits are
//! private to the store, so the rest of stile reaches a backend only through those two
//! types, and the queue writes only through the engine's handle.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::event_types::EventTypeRecord;
use crate::ids::{AppId, DeliveryId, EndpointId, EventId, PortalSessionId, ReplayId, VerificationSessionId};
use crate::mode::Mode;

use super::model::{
    ApiKeyRecord, AppDeletion, AppPurge, AppRecord, AttemptRecord, AttemptResult, AttemptStatus, Cutoffs, DefaultApps,
    DeliveryState, DeliveryStats, DueEntry, EndpointFilter, EndpointRecord, EndpointUpdated, EventFilter, FlowState,
    IdempotencyBegin, IdempotencyRecord, Job, ListError, ListenRequest, MetricsSnapshot, NewEvent, Owner, Page,
    PageRequest, PortalSessionRecord, PruneCursor, Pruned, Published, QueueKey, RecordPolicy, Recovery, ReplayRecord,
    ReplayStep, ReplayStepped, Resent, RetryNow, Revoked, Scheduled, SessionChange, SessionChanged, SessionRecord,
    StoreError, StoredEvent, UidTaken, Written,
};

use super::blocking::run_sync;
use super::rules::settle;
use super::{QueueWrites, Store};

/// Writes a backend trait from its methods' signatures, and for each method the [`Store`]
/// method (or, after `queue writes`, the [`QueueWrites`] method) of the same name that
/// calls the backend's. A method may end in a default body: what a backend that does not
/// implement it does.
///
/// The methods are `async`. Postgres's are awaited where they are called; redb's do their
/// work without awaiting anything (redb is synchronous), so the store method runs them on
/// the blocking pool and the caller's thread never waits on a commit (except a thread of
/// the engine's that runs one loop alone: see `blocking::allow_blocking_on_this_thread`).
/// That is why the arguments are owned. The store's futures are boxed: a future that names the store
/// inside a task the runtime may move between threads must be proved `Send` where its
/// lifetimes are still known (rustc cannot yet prove it later, at `spawn`). Methods in a
/// `sync` section are plain accessors that touch no data.
macro_rules! backend {
    ($(#[$doc:meta])* trait $trait:ident {
        $($(#[$attr:meta])* fn $name:ident $(<$($g:ident),*>)? (&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $({ $($default:tt)* })?;)*
        $(sync {
            $($(#[$sattr:meta])* fn $sname:ident (&self $(, $sarg:ident: $sty:ty)* $(,)?) -> $sret:ty $({ $($sdefault:tt)* })?;)*
        })?
    } $(queue writes {
        $($(#[$qattr:meta])* fn $qname:ident $(<$($qg:ident),*>)? (&self $(, $qarg:ident: $qty:ty)* $(,)?) -> $qret:ty;)*
    })?) => {
        $(#[$doc])*
        pub(in crate::store) trait $trait {
            $(backend!(@item [$(#[$attr])* async fn $name $(<$($g: Send + 'static),*>)? (&self $(, $arg: $ty)*) -> $ret] $({ $($default)* })?);)*
            $($(backend!(@item [$(#[$sattr])* fn $sname(&self $(, $sarg: $sty)*) -> $sret] $({ $($sdefault)* })?);)*)?
            $($($(#[$qattr])* async fn $qname $(<$($qg: Send + 'static),*>)? (&self $(, $qarg: $qty)*) -> $qret;)*)?
        }

        impl Store {
            $($(#[$attr])* pub fn $name $(<$($g: Send + 'static),*>)? (&self $(, $arg: $ty)*) -> BoxFuture<'_, $ret> {
                match self {
                    Store::Redb(store) => {
                        let store = Arc::clone(store);
                        run_sync(move || settle($trait::$name(&*store $(, $arg)*)))
                    }
                    Store::Postgres(store) => Box::pin($trait::$name(&**store $(, $arg)*)),
                }
            })*
            $($($(#[$sattr])* pub fn $sname(&self $(, $sarg: $sty)*) -> $sret {
                match self {
                    Store::Redb(store) => $trait::$sname(&**store $(, $sarg)*),
                    Store::Postgres(store) => $trait::$sname(&**store $(, $sarg)*),
                }
            })*)?
        }

        $(impl QueueWrites {
            $($(#[$qattr])* pub fn $qname $(<$($qg: Send + 'static),*>)? (&self $(, $qarg: $qty)*) -> BoxFuture<'_, $qret> {
                match self.backends() {
                    Store::Redb(store) => {
                        let store = Arc::clone(store);
                        run_sync(move || settle($trait::$qname(&*store $(, $qarg)*)))
                    }
                    Store::Postgres(store) => Box::pin($trait::$qname(&**store $(, $qarg)*)),
                }
            })*
        })?
    };
    (@item [$($sig:tt)*]) => { $($sig)*; };
    (@item [$($sig:tt)*] { $($body:tt)* }) => { $($sig)* { $($body)* } };
}

backend! {
    /// API keys, kept by the hash of the key. (`api_keys.rs` in each backend.)
    trait ApiKeys {
        /// Stores an API key by its hash.
        fn insert_api_key(&self, hash: [u8; 32], record: ApiKeyRecord) -> Result<(), StoreError>;
        /// Every stored API key, by hash.
        fn api_keys(&self) -> Result<Vec<([u8; 32], ApiKeyRecord)>, StoreError>;
        /// Revokes the stored key shown with `prefix`.
        fn revoke_api_key(&self, prefix: String) -> Result<Revoked, StoreError>;
    }
}

backend! {
    /// Applications (tenants) and their default per mode. (`apps.rs` in each backend.)
    trait Apps {
        /// The default application of each mode, made on first use.
        fn default_apps(&self) -> Result<DefaultApps, StoreError>;
        /// Creates an application unless its uid is taken.
        fn create_app(&self, record: AppRecord) -> Result<Result<(), UidTaken>, StoreError>;
        /// An application of `mode` by id or uid.
        fn find_app(&self, mode: Mode, name: String) -> Result<Option<AppRecord>, StoreError>;
        /// Changes an application in one transaction.
        fn update_app(&self, mode: Mode, id: AppId, change: impl FnOnce(&mut AppRecord) + Send + 'static) -> Result<Result<Option<AppRecord>, UidTaken>, StoreError>;
        /// A page of `mode`'s applications.
        fn list_apps(&self, mode: Mode, request: PageRequest<AppId>) -> Result<Page<AppRecord>, ListError>;
        /// An application of `mode` by id.
        fn app(&self, mode: Mode, id: AppId) -> Result<Option<AppRecord>, StoreError>;
        /// The default application of `mode`, for unit tests.
        #[cfg(test)]
        fn test_owner(&self, mode: Mode) -> Owner;
    }
}

backend! {
    /// Deleting applications: gone from the API at once, their data purged later. (`app_deletion.rs` in each backend.)
    trait AppDeletions {
        /// Purges the data of deleted applications, a batch at a time.
        fn purge_deleted_apps(&self, limit: usize, settled_before_ms: u64) -> Result<AppPurge, StoreError>;
    }
    queue writes {
        /// Deletes an application: it is gone from the API now, its data purged later.
        fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError>;
    }
}

backend! {
    /// Endpoints: where events go. (`endpoints.rs` in each backend.)
    trait Endpoints {
        /// Stores a new endpoint.
        fn insert_endpoint(&self, record: EndpointRecord) -> Result<(), StoreError>;
        /// An endpoint of `owner`.
        fn endpoint(&self, owner: Owner, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;
        /// Changes an endpoint in one transaction, for the store's own tests: stile changes
        /// endpoints through the engine, so the scheduler hears of it.
        #[cfg(test)]
        fn update_endpoint(&self, owner: Owner, id: EndpointId, change: impl FnOnce(&mut EndpointRecord) + Send + 'static) -> Result<Option<EndpointRecord>, StoreError>;
        /// A page of `owner`'s endpoints that match `filter`.
        fn list_endpoints(&self, owner: Owner, request: PageRequest<EndpointId>, filter: EndpointFilter) -> Result<Page<EndpointRecord>, ListError>;
    }
}

backend! {
    /// The endpoints `stile listen` clients receive on. (`listeners.rs` in each backend.)
    trait Listeners {
        /// The endpoint a `stile listen` client receives on, made by `make` the first time.
        fn listener_endpoint(&self, owner: Owner, key_hash: [u8; 32], request: ListenRequest, make: impl FnOnce() -> EndpointRecord + Send + 'static) -> Result<(EndpointRecord, bool), StoreError>;
        /// Records that a listener endpoint was in use at `now`.
        fn touch_listener(&self, owner: Owner, id: EndpointId, now: i64) -> Result<(), StoreError>;
        /// Listener endpoints unused since `cutoff`.
        fn idle_listeners(&self, cutoff: i64) -> Result<Vec<(Owner, EndpointId)>, StoreError>;
    }
}

backend! {
    /// The event type catalogue. (`event_types.rs` in each backend.)
    trait EventTypes {
        /// Every stored event type.
        fn event_types(&self) -> Result<Vec<EventTypeRecord>, StoreError>;
        /// Stores a new event type; `false` if the name is taken.
        fn create_event_type(&self, record: EventTypeRecord) -> Result<bool, StoreError>;
        /// Replaces a stored event type.
        fn replace_event_type(&self, record: EventTypeRecord) -> Result<(), StoreError>;
    }
}

backend! {
    /// Events: publishing, reading, listing and resending them. (`events.rs` in each backend.)
    trait Events {
        /// An event of `owner`.
        fn event(&self, owner: Owner, id: EventId) -> Result<Option<StoredEvent>, StoreError>;
        /// A page of `owner`'s events that match `filter`.
        fn list_events(&self, owner: Owner, request: PageRequest<EventId>, filter: EventFilter) -> Result<Page<StoredEvent>, ListError>;
        /// Records a test ping made outside the queue, with its event.
        fn record_test_ping(&self, event: NewEvent, record: AttemptRecord) -> Result<(), StoreError>;
    }
    queue writes {
        /// Stores events and queues their first attempts, in one commit.
        fn publish_events(&self, events: Vec<NewEvent>, now_ms: u64) -> Result<(Vec<Published>, Scheduled), StoreError>;
        /// Queues an event again, to one endpoint or to all it went to.
        fn resend_event(&self, owner: Owner, id: EventId, endpoint: Option<EndpointId>, now_ms: u64, default_hours: u32) -> Result<Resent, StoreError>;
    }
}

backend! {
    /// The attempts of deliveries, as the API shows them. (`attempts.rs` in each backend.)
    trait Attempts {
        /// A page of an endpoint's attempts, optionally of one status.
        fn list_attempts(&self, owner: Owner, endpoint: EndpointId, request: PageRequest<DeliveryId>, status: Option<AttemptStatus>) -> Result<Page<AttemptRecord>, ListError>;
        /// A page of an endpoint's attempts as `list_attempts` reads it, but the cursor is a
        /// bound only (it may name another endpoint's attempt): one endpoint's part of a
        /// list of the application's attempts across its endpoints.
        fn endpoint_attempts_page(&self, owner: Owner, endpoint: EndpointId, request: PageRequest<DeliveryId>, status: Option<AttemptStatus>) -> Result<Page<AttemptRecord>, StoreError>;
        /// One attempt of an endpoint.
        fn attempt(&self, owner: Owner, endpoint: EndpointId, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError>;
        /// One attempt of the application, whichever its endpoint.
        fn app_attempt(&self, owner: Owner, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError>;
        /// Every attempt of `owner`'s events of `event_type`, when it has at most
        /// `max_events` of them; `None` when it has more. A list filtered by a type that
        /// is rare among the application's attempts is answered from these, not by reading
        /// every attempt of the other types on the way.
        fn attempts_of_type(&self, owner: Owner, event_type: String, max_events: usize) -> Result<Option<Vec<AttemptRecord>>, StoreError>;
        /// An event's attempts, up to `limit`, and whether there are more.
        fn event_attempts(&self, owner: Owner, event: EventId, limit: usize) -> Result<(Vec<AttemptRecord>, bool), StoreError>;
        /// Overwrites (or removes) an attempt's stored bytes, for unit tests of bad records.
        #[cfg(test)]
        fn put_raw_attempt_for_test(&self, id: DeliveryId, bytes: Option<Vec<u8>>) -> ();
    }
}

backend! {
    /// The queue as the engine's scheduler reads it. (`queue.rs` in each backend.)
    trait Queue {
        /// Queue entries due by `until_ms`, after `after`, up to `limit`. `full` names the
        /// endpoints the scheduler holds enough entries of: a shared queue leaves out the
        /// entries set aside for this process of those (`release_claims`), which would
        /// otherwise be claimed and set aside again on every pass; one process scans past
        /// them by its cursor instead.
        fn due_entries(&self, after: Option<QueueKey>, until_ms: u64, limit: usize, full: Vec<EndpointId>) -> Result<Vec<DueEntry>, StoreError>;
        /// When the first entry after `after` is due (on a shared queue, the first this
        /// process could claim, leaving out what it set aside of the endpoints in `full`).
        fn next_due_after(&self, after: Option<QueueKey>, full: Vec<EndpointId>) -> Result<Option<u64>, StoreError>;
        /// How many entries the queue holds.
        fn queue_depth(&self) -> Result<u64, StoreError>;
        /// Removes a queue entry behind the engine's back, for unit tests.
        #[cfg(test)]
        fn drop_queue_entry_for_test(&self, key: QueueKey) -> ();
    }
}

backend! {
    /// What the engine sends for each attempt. (`jobs.rs` in each backend.)
    trait Jobs {
        /// What to send for each attempt, read in one snapshot.
        fn jobs(&self, attempt_ids: Vec<DeliveryId>) -> Result<Vec<Option<Job>>, StoreError>;
    }
}

backend! {
    /// Verification sessions and the events their moves publish. (`sessions.rs` in each backend.)
    trait Sessions {
        /// A session of `owner`.
        fn session(&self, owner: Owner, id: VerificationSessionId) -> Result<Option<SessionRecord>, StoreError>;
        /// When the next session expires.
        fn next_session_expiry(&self) -> Result<Option<u64>, StoreError>;
        /// A page of `owner`'s sessions.
        fn list_sessions(&self, owner: Owner, request: PageRequest<VerificationSessionId>) -> Result<Page<SessionRecord>, ListError>;
    }
    queue writes {
        /// Stores a new session with its first event.
        fn create_session(&self, session: SessionRecord, event: NewEvent, expires_ms: u64, now_ms: u64) -> Result<SessionChanged, StoreError>;
        /// Moves a session and publishes the event of the move, in one commit.
        fn change_session<R>(&self, owner: Owner, id: VerificationSessionId, now_ms: u64, change: impl FnOnce(&mut SessionRecord) -> Result<NewEvent, R> + Send + 'static) -> Result<SessionChange<R>, StoreError>;
        /// Expires sessions due by `now_ms`, a batch at a time.
        fn expire_due_sessions<R>(&self, now_ms: u64, limit: usize, expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R> + Send + Sync + 'static) -> Result<(usize, Scheduled), StoreError>;
    }
}

backend! {
    /// The customer portal's sessions, by their token's hash. (`portal_sessions.rs` in each backend.)
    trait PortalSessions {
        /// Stores a portal session by its token's hash.
        fn insert_portal_session(&self, hash: [u8; 32], record: PortalSessionRecord) -> Result<(), StoreError>;
        /// A portal session by its token's hash.
        fn portal_session(&self, hash: [u8; 32]) -> Result<Option<PortalSessionRecord>, StoreError>;
        /// Ends a portal session of `owner`'s application.
        fn revoke_portal_session(&self, owner: Owner, id: PortalSessionId) -> Result<bool, StoreError>;
    }
}

backend! {
    /// Stored answers to requests made with an `Idempotency-Key`. (`idempotency.rs` in each backend.)
    trait Idempotency {
        /// Begins a request with an idempotency key: its stored answer, or leave to run.
        fn begin_idempotent(&self, owner: Owner, key: String, fingerprint: String, now: i64) -> Result<IdempotencyBegin, StoreError>;
        /// Lets go of a key whose request stored no answer.
        fn abandon_idempotent(&self, owner: Owner, key: String, fingerprint: String, since: i64) -> Result<(), StoreError>;
        /// Stores the answer to an idempotency key.
        fn put_idempotency_record(&self, owner: Owner, key: String, record: IdempotencyRecord) -> Result<(), StoreError>;
    }
}

backend! {
    /// Removing history older than its cutoffs. (`retention.rs` in each backend.)
    trait Retention {
        /// Removes history older than the cutoffs, a batch at a time.
        fn prune(&self, cutoffs: Cutoffs, cursor: PruneCursor, limit: usize) -> Result<(Pruned, PruneCursor), StoreError>;
    }
}

backend! {
    /// The figures the metrics endpoint and the dashboard show. (`stats.rs` in each backend.)
    trait Stats {
        /// The counts the metrics endpoint reports.
        fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError>;
        /// Delivery statistics of `owner` over a time range.
        fn delivery_stats(&self, owner: Owner, since: i64, until: i64, bucket_seconds: i64, failures: usize) -> Result<DeliveryStats, StoreError>;
    }
}

backend! {
    /// What every backend has, and what only a shared one (many processes on one database)
    /// does: each default is what one process on its own file does, which is nothing.
    trait Backend {
        /// Whether the store answers (the health check).
        fn check(&self) -> Result<(), StoreError>;
        /// Extends the claims on the queue entries this process holds, its hold on the
        /// listener endpoints it still has a CLI for, and its sending to the endpoints in
        /// `sending`, recording each one's flow as it is now (for [`Backend::flow_state`]
        /// in every process); and gives back to every process the entries reserved for
        /// holders that lapsed.
        fn renew_claims(&self, held: Vec<DeliveryId>, listening: Vec<EndpointId>, sending: Vec<FlowState>) -> Result<(), StoreError> { let _ = (held, listening, sending); Ok(()) };
        /// Takes the sending to these endpoints for this process for the claim lease, or
        /// keeps it, so each endpoint's flow (in flight, rate, pause) is kept by one
        /// process; the due entries listed with an endpoint another process sends to are
        /// handed to that process (and woken). Returns the endpoints this process sends
        /// to (with one process, all of them), each with the pause its last sender, when
        /// that was another process, recorded on it (Unix ms): the new sender keeps it.
        fn send_for(&self, wanted: Vec<(EndpointId, Vec<DeliveryId>)>) -> Result<Vec<(EndpointId, Option<u64>)>, StoreError> { Ok(wanted.into_iter().map(|(endpoint, _)| (endpoint, None)).collect()) };
        /// Gives up what this process holds of a shared queue as it stops, so the others
        /// go on at once rather than when the leases run out: its sendership of
        /// endpoints (their pauses stay recorded for the next sender), its claims on
        /// `held` (the entries it had loaded and not made), and the entries reserved for
        /// it. One process: nothing is held.
        fn let_go(&self, held: Vec<DeliveryId>) -> Result<(), StoreError> { let _ = held; Ok(()) };
        /// `endpoint`'s flow as the process sending to it last recorded it (one process:
        /// its scheduler shows it directly, and this is `None`).
        fn flow_state(&self, endpoint: EndpointId) -> Result<Option<FlowState>, StoreError> { let _ = endpoint; Ok(None) };
        /// Gives up the claims on queue entries this process loaded but will not make now.
        /// On a shared queue those of an endpoint with a sender (or a listener's CLI
        /// holder) are set aside for it (reserved, out of every other claim's way) until
        /// it has room for them.
        fn release_claims(&self, entries: Vec<DeliveryId>) -> Result<(), StoreError> { let _ = entries; Ok(()) };
        /// Records that this process holds listener endpoint `id`'s `stile listen`
        /// connection, so other processes on a shared store hand it the endpoint's attempts
        /// rather than park them (one process: nothing to record).
        fn hold_listener(&self, id: EndpointId) -> Result<(), StoreError> { let _ = id; Ok(()) };
        /// Records that this process no longer holds listener endpoint `id`'s connection.
        fn release_listener(&self, id: EndpointId) -> Result<(), StoreError> { let _ = id; Ok(()) };
        /// Whether this process does the duties one process does for all (retention,
        /// purging deleted applications): always with one process; on a shared store, the
        /// one process holding their lock.
        fn lead(&self) -> Result<bool, StoreError> { Ok(true) };
        sync {
            /// Seals and opens what is stored sealed (payloads, responses, endpoint secrets)
            /// with the payload key.
            fn sealer(&self) -> &super::sealing::Sealer;
            /// Whether other processes may write this store too: what this process keeps in
            /// memory of it must then be followed or not kept.
            fn is_shared(&self) -> bool { false };
            /// How often the scheduler must renew its claims on the queue entries it holds;
            /// `None`: entries are not claimed (one process).
            fn claim_renewal(&self) -> Option<Duration> { None };
            /// Calls `wake` when another process queues attempts (with one process none can).
            fn on_queue_change(&self, wake: Box<dyn Fn() + Send + Sync>) -> () { drop(wake) };
            /// How many hours an undelivered payload is kept for an endpoint that sets no
            /// window of its own (what a skipped delivery is held for).
            fn undelivered_hours(&self) -> u32;
            /// Makes this store's publishing writes bear their first attempts ([`super::model::Born`]:
            /// their jobs handed to the scheduler, and on a shared queue claimed for this
            /// process), once, as the delivery engine over it starts: only a scheduler takes
            /// them.
            fn bear_births(&self) -> ();
            /// Whether [`Backend::bear_births`] was called.
            fn bears_births(&self) -> bool;
            /// Sets [`Backend::undelivered_hours`] from the configuration, once, at start.
            fn set_undelivered_hours(&self, hours: u32) -> ();
            /// How many transactions this process ran again after the database aborted them
            /// for a conflict (`None`: no database to conflict in).
            fn conflicts_rerun(&self) -> Option<u64> { None };
            /// This process's database connections (in use, idle, waiting for one).
            fn pool_status(&self) -> Option<(usize, usize, usize)> { None };
        }
    }
}

backend! {
    /// The writes that put attempts on the queue or take them off, beyond publishing. (`scheduling.rs` in each backend.)
    trait Scheduling {
    }
    queue writes {
        /// Changes an endpoint and, when asked, puts its parked deliveries back in the queue.
        fn update_endpoint_and_resume(&self, owner: Owner, id: EndpointId, now_ms: u64, resume: bool, change: impl FnOnce(&mut EndpointRecord) + Send + 'static) -> Result<Option<EndpointUpdated>, StoreError>;
        /// Deletes an endpoint and cancels what it had queued.
        fn delete_endpoint(&self, owner: Owner, id: EndpointId, now: i64) -> Result<bool, StoreError>;
        /// Publishes events and records attempt results, in one commit (the engine's writer).
        fn publish_and_record(&self, events: Arc<[NewEvent]>, results: Arc<[AttemptResult]>, now_ms: u64, policy: impl RecordPolicy + Send + Sync + 'static) -> Result<Written, StoreError>;
        /// Queues a failed or pending attempt to be made now.
        fn retry_now(&self, owner: Owner, endpoint: EndpointId, id: DeliveryId, now_ms: u64) -> Result<RetryNow, StoreError>;
        /// Takes entries whose endpoint is not deliverable out of the queue.
        fn park(&self, keys: Vec<QueueKey>, deliverable: impl Fn(&EndpointRecord) -> bool + Send + Sync + 'static) -> Result<Scheduled, StoreError>;
        /// Puts parked entries whose endpoint is deliverable again back in the queue.
        fn unpark(&self, now_ms: u64) -> Result<Scheduled, StoreError>;
        /// Puts one endpoint's parked entries back in the queue.
        fn unpark_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError>;
    }
}

backend! {
    /// Queueing again the deliveries an endpoint failed since a time. (`recovery.rs` in each backend.)
    trait Recoveries {
    }
    queue writes {
        /// Queues again the failed deliveries of an endpoint since a time.
        fn recover_endpoint(&self, owner: Owner, id: EndpointId, since: i64, dry_run: bool, now_ms: u64, default_hours: u32) -> Result<Option<Recovery>, StoreError>;
    }
}

backend! {
    /// Replays: queries whose matched deliveries are sent again in the background, a step
    /// at a time. (`replays.rs` in each backend.)
    trait Replays {
        /// Stores a new replay.
        fn insert_replay(&self, record: ReplayRecord) -> Result<(), StoreError>;
        /// A replay of `owner`.
        fn replay(&self, owner: Owner, id: ReplayId) -> Result<Option<ReplayRecord>, StoreError>;
        /// A page of `owner`'s replays.
        fn list_replays(&self, owner: Owner, request: PageRequest<ReplayId>) -> Result<Page<ReplayRecord>, ListError>;
        /// Changes a replay in one transaction; once it is no longer watched, the record
        /// of which deliveries it sent goes (its counts stay).
        fn change_replay(&self, owner: Owner, id: ReplayId, change: impl FnOnce(&mut ReplayRecord) + Send + 'static) -> Result<Option<ReplayRecord>, StoreError>;
        /// Every replay, of every application, still running or whose outcomes may still change.
        fn watched_replays(&self) -> Result<Vec<ReplayRecord>, StoreError>;
        /// Where each delivery of `owner`'s `events` stands: per event, each endpoint it
        /// was attempted to (its latest attempt) or skipped for (and may still be replayed
        /// to at `now_ms`).
        fn delivery_states(&self, owner: Owner, events: Vec<EventId>, now_ms: u64) -> Result<Vec<(EventId, EndpointId, DeliveryState)>, StoreError>;
        /// Counts the outcomes of a replay's deliveries that ended since the last count, at
        /// `now` (Unix seconds): the replay as it is now, and how many of its deliveries
        /// wait for their first attempt.
        fn settle_replay(&self, owner: Owner, id: ReplayId, now: i64) -> Result<Option<(ReplayRecord, u64)>, StoreError>;
    }
    queue writes {
        /// Takes a step of a replay: queues its deliveries again and moves it on, in one
        /// commit, unless it was not where the step started from.
        fn replay_step(&self, owner: Owner, id: ReplayId, step: ReplayStep, now_ms: u64, default_hours: u32) -> Result<ReplayStepped, StoreError>;
    }
}
