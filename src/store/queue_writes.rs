//! The store's writes that put attempts on the delivery queue or take them off, behind a
//! handle only the delivery engine holds.
//!
//! Whoever queues an attempt must wake the scheduler, and only the engine does (STYLE:
//! the engine owns the queue). So these writes are not methods of [`Store`] outside
//! `store/` (nor of either backend): they are reachable only through [`QueueWrites`], and
//! the one `QueueWrites` of a store comes from [`Store::into_shared`], which consumes the
//! store. `lib.rs` hands it to `Engine::start`; every other part of stile gets the shared
//! store, which reads and makes the plain writes (endpoints, keys, applications) only.
//!
//! Outside the store, a queue write on the shared store does not compile:
//! ```compile_fail
//! fn queue_behind_the_engines_back(store: &stile::store::Store) {
//!     let _ = store.unpark(0);
//! }
//! ```
//! nor on a backend:
//! ```compile_fail
//! fn queue_on_the_file(store: &stile::store::RedbStore) {
//!     let _ = store.unpark(0);
//! }
//! ```
//! while reading through it does:
//! ```
//! fn depth(store: &stile::store::Store) -> Result<u64, stile::store::StoreError> {
//!     store.queue_depth()
//! }
//! ```

use std::ops::Deref;
use std::sync::Arc;

use super::app_deletion::AppDeletion;
use super::apps::Owner;
use super::attempts::{AttemptResult, RecordPolicy};
use super::endpoints::EndpointRecord;
use super::events::{NewEvent, Published, Resent};
use super::queue::{QueueKey, Scheduled};
use super::recovery::Recovery;
use super::scheduling::{EndpointUpdated, RetryNow, Written};
use super::sessions::{SessionChange, SessionChanged, SessionRecord};
use super::{Store, StoreError};
use crate::ids::{AppId, DeliveryId, EndpointId, EventId, VerificationSessionId};
use crate::mode::Mode;

/// The queue writes of one store (see the module doc). Reads go through it to the store
/// (it dereferences to [`Store`]); clones are for the engine's own threads.
#[derive(Clone)]
pub struct QueueWrites {
    store: Arc<Store>,
}

impl Deref for QueueWrites {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Store {
    /// Shares the store, and gives its queue writes, once, to whoever opened it (the
    /// engine).
    pub fn into_shared(self) -> (Arc<Store>, QueueWrites) {
        let store = Arc::new(self);
        (Arc::clone(&store), QueueWrites { store })
    }
}

impl QueueWrites {
    /// The store these writes go to, shared.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Deletes an application: it is gone from the API now, its data purged later.
    pub fn delete_app(&self, mode: Mode, id: AppId, now_ms: u64) -> Result<AppDeletion, StoreError> {
        self.store.delete_app(mode, id, now_ms)
    }

    /// Changes an endpoint and, when asked, puts its parked deliveries back in the queue.
    pub fn update_endpoint_and_resume(
        &self,
        owner: Owner,
        id: EndpointId,
        now_ms: u64,
        resume: bool,
        change: impl FnOnce(&mut EndpointRecord),
    ) -> Result<Option<EndpointUpdated>, StoreError> {
        self.store.update_endpoint_and_resume(owner, id, now_ms, resume, change)
    }

    /// Deletes an endpoint and cancels what it had queued.
    pub fn delete_endpoint(&self, owner: Owner, id: EndpointId, now: i64) -> Result<bool, StoreError> {
        self.store.delete_endpoint(owner, id, now)
    }

    /// Queues again the failed deliveries of an endpoint since a time.
    pub fn recover_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Option<Recovery>, StoreError> {
        self.store.recover_endpoint(owner, id, since, dry_run, now_ms, default_hours)
    }

    /// Stores events and queues their first attempts, in one commit.
    pub fn publish_events(&self, events: &[NewEvent], now_ms: u64) -> Result<(Vec<Published>, Scheduled), StoreError> {
        self.store.publish_events(events, now_ms)
    }

    /// Publishes events and records attempt results, in one commit (the engine's writer).
    pub fn publish_and_record(
        &self,
        events: &[NewEvent],
        results: &[AttemptResult],
        now_ms: u64,
        policy: &impl RecordPolicy,
    ) -> Result<Written, StoreError> {
        self.store.publish_and_record(events, results, now_ms, policy)
    }

    /// Queues an event again, to one endpoint or to all it went to.
    pub fn resend_event(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
        now_ms: u64,
        default_hours: u32,
    ) -> Result<Resent, StoreError> {
        self.store.resend_event(owner, id, endpoint, now_ms, default_hours)
    }

    /// Queues a failed or pending attempt to be made now.
    pub fn retry_now(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
        now_ms: u64,
    ) -> Result<RetryNow, StoreError> {
        self.store.retry_now(owner, endpoint, id, now_ms)
    }

    /// Takes entries whose endpoint is not deliverable out of the queue.
    pub fn park(
        &self,
        keys: &[QueueKey],
        deliverable: impl Fn(&EndpointRecord) -> bool,
    ) -> Result<Scheduled, StoreError> {
        self.store.park(keys, deliverable)
    }

    /// Puts parked entries whose endpoint is deliverable again back in the queue.
    pub fn unpark(&self, now_ms: u64) -> Result<Scheduled, StoreError> {
        self.store.unpark(now_ms)
    }

    /// Puts one endpoint's parked entries back in the queue.
    pub fn unpark_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Scheduled, StoreError> {
        self.store.unpark_endpoint(id, now_ms)
    }

    /// Stores a new session with its first event.
    pub fn create_session(
        &self,
        session: &SessionRecord,
        event: &NewEvent,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<SessionChanged, StoreError> {
        self.store.create_session(session, event, expires_ms, now_ms)
    }

    /// Moves a session and publishes the event of the move, in one commit.
    pub fn change_session<R>(
        &self,
        owner: Owner,
        id: VerificationSessionId,
        now_ms: u64,
        change: impl FnOnce(&mut SessionRecord) -> Result<NewEvent, R>,
    ) -> Result<SessionChange<R>, StoreError> {
        self.store.change_session(owner, id, now_ms, change)
    }

    /// Expires sessions due by `now_ms`, a batch at a time.
    pub fn expire_due_sessions<R>(
        &self,
        now_ms: u64,
        limit: usize,
        expire: impl Fn(&mut SessionRecord) -> Result<NewEvent, R>,
    ) -> Result<(usize, Scheduled), StoreError> {
        self.store.expire_due_sessions(now_ms, limit, expire)
    }
}
