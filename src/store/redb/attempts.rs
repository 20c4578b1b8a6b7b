//! Delivery attempts: their records and indexes, and recording what happened when one was
//! made.
//!
//! A delivery is one event going to one endpoint; each try is an attempt record (`wd_`).
//! The next attempt of a delivery exists as a `pending` record with a queue entry from the
//! moment it is scheduled, and its outcome, the removal of its queue entry, and the
//! scheduling of the following attempt are committed in one transaction. When to retry
//! and when to disable an endpoint are decided by the [`RecordPolicy`] the caller gives;
//! the store records the decisions.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::store::backend::Attempts;
use crate::store::model::pagination::{bound_page, finish_page, scan_bounds};
use crate::store::model::{
    AppRecord, AttemptResult, Cursor, EndpointRecord, EndpointStatus, FailureRun, ListError, Owner, Page, PageRequest,
    QueueKey, RecordPolicy, Recorded, Scheduled, StoreError,
};
use crate::store::rules;
use crate::store::rules::cancel::CancelTx;
use crate::store::rules::record::{RecordingTx, record_results};
use crate::store::sealing::Sealer;

use super::attempt_record::{attempt_in, encode_attempt, outcome_in};
use super::names::{Interner, Names};
use super::queue::QueueTables;
use super::{RedbStore, apps, endpoints, health, tables};

pub use crate::store::model::AttemptRecord;

pub use crate::store::model::AttemptStatus;

/// The tables a scheduling write touches, opened once per transaction.
pub(super) struct DeliveryTables<'txn, 'n> {
    attempts: Table<'txn, u128, &'static [u8]>,
    /// Numbers the names of what is written.
    pub(super) names: Interner<'txn, 'n>,
    by_endpoint: Table<'txn, (u128, u128, u128), ()>,
    by_event: Table<'txn, (u128, u128), ()>,
    stats: Table<'txn, (u128, u64, u128, u8), u64>,
    failures: Table<'txn, (u128, u128), ()>,
    endpoint_failures: Table<'txn, (u128, u128, u128), ()>,
    event_failures: Table<'txn, (u128, u128), ()>,
    pub(super) queue: QueueTables<'txn>,
    event_pending: Table<'txn, u128, u32>,
    holds: Table<'txn, u128, u64>,
    /// Per-minute outcome counts tallied in this transaction, written together by
    /// [`DeliveryTables::write_tallies`]: a batch of hundreds of results to one endpoint
    /// in one minute is one counter update, not hundreds.
    tallies: HashMap<(u128, u64, u128, u8), u64>,
}

impl<'txn, 'n> DeliveryTables<'txn, 'n> {
    /// Opens the tables in `tx`; `names` is the store's name dictionary.
    pub(super) fn open(tx: &'txn WriteTransaction, names: &'n Names) -> Result<Self, StoreError> {
        Ok(Self {
            attempts: tx.open_table(tables::ATTEMPTS)?,
            names: Interner::open(tx, names)?,
            by_endpoint: tx.open_table(tables::ENDPOINT_ATTEMPTS)?,
            by_event: tx.open_table(tables::EVENT_ATTEMPTS)?,
            stats: tx.open_table(tables::DELIVERY_STATS)?,
            failures: tx.open_table(tables::FAILED_ATTEMPTS)?,
            endpoint_failures: tx.open_table(tables::ENDPOINT_FAILURES)?,
            event_failures: tx.open_table(tables::EVENT_FAILURES)?,
            queue: QueueTables::open(tx)?,
            event_pending: tx.open_table(tables::EVENT_PENDING)?,
            holds: tx.open_table(tables::UNDELIVERED_HOLDS)?,
            tallies: HashMap::new(),
        })
    }

    /// Schedules attempt `number` of `event` to `endpoint` at `due_ms`: queued if the
    /// endpoint is enabled (its key goes into `scheduled`), parked if not.
    pub(super) fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event_id: EventId,
        event_type: &str,
        number: u32,
        due_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<AttemptRecord, StoreError> {
        let record = AttemptRecord::pending(endpoint, event_id, event_type, number, due_ms);
        self.save(&record)?;
        self.index(&record)?;
        if endpoint.status == EndpointStatus::Disabled {
            self.queue.park(endpoint.id, record.id, None)?;
        } else {
            scheduled.push(self.queue.enqueue(endpoint.app, endpoint.id, record.id, due_ms)?);
        }
        Ok(record)
    }

    /// Lists an attempt under its endpoint and its event.
    fn index(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        let id = record.id.as_u128();
        self.by_endpoint.insert((record.app.as_u128(), record.endpoint_id.as_u128(), id), ())?;
        self.by_event.insert((record.event_id.as_u128(), id), ())?;
        Ok(())
    }

    /// Adds `n` to an event's count of unfinished deliveries.
    pub(super) fn add_pending(&mut self, event: EventId, n: u32) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        let current = self.event_pending.get(event.as_u128())?.map_or(0, |v| v.value());
        self.event_pending.insert(event.as_u128(), current.saturating_add(n))?;
        Ok(())
    }

    /// Keeps an event's payload until at least `until_ms` (Unix ms).
    pub(super) fn hold_payload(&mut self, event: EventId, until_ms: u64) -> Result<(), StoreError> {
        let current = self.holds.get(event.as_u128())?.map_or(0, |v| v.value());
        if until_ms > current {
            self.holds.insert(event.as_u128(), until_ms)?;
        }
        Ok(())
    }

    fn finish_one(&mut self, event: EventId) -> Result<(), StoreError> {
        let event = event.as_u128();
        let current = self.event_pending.get(event)?.map_or(0, |v| v.value());
        if current <= 1 {
            self.event_pending.remove(event)?;
        } else {
            self.event_pending.insert(event, current - 1)?;
        }
        Ok(())
    }

    /// Keeps [`tables::EVENT_FAILURES`] true after an attempt's final outcome was saved:
    /// the event is there exactly when the latest attempt to some endpoint failed for
    /// good. A success costs one lookup (the event is rarely there); a failure for good,
    /// or a success after one (a resend that got through), reads the event's attempts, as
    /// an older attempt can fail after a newer one succeeded.
    fn note_outcome(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        let key = (record.app.as_u128(), record.event_id.as_u128());
        let listed = self.event_failures.get(key)?.is_some();
        match record.status {
            AttemptStatus::Failed => {}
            AttemptStatus::Succeeded if listed => {}
            _ => return Ok(()),
        }
        let latest = latest_per_endpoint(&self.by_event, &self.attempts, record.event_id)?;
        let failed = latest.values().any(|(status, _)| *status == AttemptStatus::Failed);
        match (failed, listed) {
            (true, false) => {
                self.event_failures.insert(key, ())?;
            }
            (false, true) => {
                self.event_failures.remove(key)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Counts a made attempt (succeeded, retrying or failed) towards the per-minute
    /// statistics, and indexes it among the recent failures if it failed. The counts are
    /// stored by [`DeliveryTables::write_tallies`], which the caller must call before
    /// committing.
    fn tally(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        let outcome = match record.status {
            AttemptStatus::Succeeded => tables::OUTCOME_SUCCEEDED,
            AttemptStatus::Retrying | AttemptStatus::Failed => tables::OUTCOME_FAILED,
            AttemptStatus::Pending => return Ok(()),
        };
        let app = record.app.as_u128();
        let key = (app, (record.created.max(0) as u64) / 60, record.endpoint_id.as_u128(), outcome);
        *self.tallies.entry(key).or_default() += 1;
        if outcome == tables::OUTCOME_FAILED {
            self.index_failure(record)?;
        }
        Ok(())
    }

    /// Files an attempt that failed (retrying or for good) where the lists of failures
    /// read: the application's recent failures and the endpoint's `retrying`/`failed`.
    fn index_failure(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        let app = record.app.as_u128();
        self.failures.insert((app, record.id.as_u128()), ())?;
        self.endpoint_failures.insert((app, record.endpoint_id.as_u128(), record.id.as_u128()), ())?;
        Ok(())
    }

    /// Counts an event `endpoint`'s content filter refused at `now_ms` (stored by
    /// [`DeliveryTables::write_tallies`]).
    pub(super) fn tally_filtered(&mut self, endpoint: &EndpointRecord, now_ms: u64) {
        let key = (endpoint.app.as_u128(), now_ms / 60_000, endpoint.id.as_u128(), tables::OUTCOME_FILTERED);
        *self.tallies.entry(key).or_default() += 1;
    }

    /// Adds the counts [`DeliveryTables::tally`] and [`DeliveryTables::tally_filtered`]
    /// gathered to the statistics table.
    pub(super) fn write_tallies(&mut self) -> Result<(), StoreError> {
        for (key, n) in std::mem::take(&mut self.tallies) {
            let count = self.stats.get(key)?.map_or(0, |v| v.value());
            self.stats.insert(key, count + n)?;
        }
        Ok(())
    }

    /// Stores an attempt that was made outside the queue (a test ping): the record, its
    /// indexes, its statistics and its event's failed flag.
    pub(super) fn add_finished(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.save(record)?;
        self.index(record)?;
        self.tally(record)?;
        self.note_outcome(record)?;
        self.write_tallies()
    }

    pub(super) fn load(&self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        attempt_in(&self.attempts, id.as_u128(), self.names.memory())
    }

    /// The `retrying` attempts numbered `number` of `event`'s deliveries to `endpoint`
    /// (one, unless a resend overlapped the retries), from the event's attempts.
    pub(super) fn retrying_of(
        &self,
        event: EventId,
        endpoint: EndpointId,
        number: u32,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let event = event.as_u128();
        let mut found = Vec::new();
        for entry in self.by_event.range((event, 0)..=(event, u128::MAX))? {
            let (_, id) = entry?.0.value();
            if let Some(record) = self.load(DeliveryId(id))?
                && record.endpoint_id == endpoint
                && record.attempt == number
                && record.status == AttemptStatus::Retrying
            {
                found.push(record);
            }
        }
        Ok(found)
    }

    pub(super) fn save(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.attempts.insert(record.id.as_u128(), encode_attempt(record, &mut self.names)?.as_slice())?;
        Ok(())
    }
}

impl CancelTx for DeliveryTables<'_, '_> {
    async fn take_pending(&mut self, endpoint: EndpointId) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut pending = Vec::new();
        for id in self.queue.pending_of(endpoint)? {
            if let Some(record) = self.load(id)? {
                self.queue.unqueue(endpoint, record.queue_key())?;
                pending.push(record);
            }
        }
        Ok(pending)
    }

    fn store_ended(&mut self, record: AttemptRecord) -> Result<(), StoreError> {
        self.save(&record)?;
        self.index_failure(&record)?;
        self.finish_one(record.event_id)?;
        self.note_outcome(&record)
    }
}

/// Records the results of attempts inside `tx`, by the rule in [`rules::record`].
pub(super) fn record_in(
    tx: &WriteTransaction,
    sealer: &Sealer,
    names: &Names,
    results: &[AttemptResult],
    now_ms: u64,
    policy: &impl RecordPolicy,
) -> Result<Recorded, StoreError> {
    if results.is_empty() {
        return Ok(Recorded::default());
    }
    let mut recording = Recording {
        tx,
        endpoints: tx.open_table(tables::ENDPOINTS)?,
        health: tx.open_table(tables::ENDPOINT_HEALTH)?,
        t: DeliveryTables::open(tx, names)?,
    };
    rules::settle(record_results(&mut recording, sealer, results, now_ms, policy))
}

/// The tables recording results touches, opened once per transaction.
struct Recording<'txn, 'n> {
    /// For the rare read of a table none of the others is (an application).
    tx: &'txn WriteTransaction,
    endpoints: Table<'txn, (u128, u128), &'static [u8]>,
    health: Table<'txn, u128, (u64, u32)>,
    t: DeliveryTables<'txn, 'n>,
}

impl RecordingTx for Recording<'_, '_> {
    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        self.t.load(id)
    }

    fn drop_entry(&mut self, key: QueueKey) -> Result<(), StoreError> {
        self.t.queue.drop_entry(key)
    }

    fn unqueue(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.t.queue.unqueue(record.endpoint_id, record.queue_key())
    }

    async fn stored_health(&mut self, endpoint: EndpointId) -> Result<Option<FailureRun>, StoreError> {
        Ok(self.health.get(endpoint.as_u128())?.map(|v| health::run_of(v.value())))
    }

    async fn save_health(&mut self, changed: Vec<(EndpointId, Option<FailureRun>)>) -> Result<(), StoreError> {
        for (endpoint, run) in changed {
            match run {
                Some(run) => self.health.insert(endpoint.as_u128(), (run.since_ms, run.failures))?,
                None => self.health.remove(endpoint.as_u128())?,
            };
        }
        Ok(())
    }

    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        endpoints::get_in(&self.endpoints, app, id)
    }

    async fn disable(&mut self, app: AppId, id: EndpointId, reason: &str, at: i64) -> Result<bool, StoreError> {
        endpoints::disable_in(&mut self.endpoints, app, id, reason, at)
    }

    async fn app(&mut self, owner: Owner) -> Result<Option<AppRecord>, StoreError> {
        apps::get_in(&self.tx.open_table(tables::APPS)?, owner)
    }

    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        after: &AttemptRecord,
        number: u32,
        due_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<(), StoreError> {
        self.t.schedule(endpoint, after.event_id, &after.event_type, number, due_ms, scheduled).map(drop)
    }

    fn finish_one(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.t.finish_one(record.event_id)
    }

    fn hold_payload(&mut self, record: &AttemptRecord, until_ms: u64) -> Result<(), StoreError> {
        self.t.hold_payload(record.event_id, until_ms)
    }

    fn store_outcome(&mut self, record: AttemptRecord) -> Result<(), StoreError> {
        self.t.tally(&record)?;
        self.t.save(&record)?;
        self.t.note_outcome(&record)
    }

    async fn retried(&mut self, made: &AttemptRecord) -> Result<(), StoreError> {
        let mut waiting = self.t.retrying_of(made.event_id, made.endpoint_id, made.attempt - 1)?;
        if let (Some(mut previous), None) = (waiting.pop(), waiting.pop()) {
            previous.status = AttemptStatus::Failed;
            self.t.save(&previous)?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), StoreError> {
        self.t.write_tallies()
    }
}

/// Whether an event reached every endpoint it went to: `Some(true)` if the latest attempt
/// to each endpoint succeeded, `Some(false)` if one did not (pending, retrying, failed),
/// `None` if it went nowhere.
pub(super) fn delivered_everywhere(
    by_event: &impl ReadableTable<(u128, u128), ()>,
    attempts: &impl ReadableTable<u128, &'static [u8]>,
    event: EventId,
) -> Result<Option<bool>, StoreError> {
    let latest = latest_per_endpoint(by_event, attempts, event)?;
    if latest.is_empty() {
        return Ok(None);
    }
    Ok(Some(latest.values().all(|(status, _)| *status == AttemptStatus::Succeeded)))
}

/// The latest attempt of an event to each endpoint it went to: its status and when it
/// was made (Unix seconds).
pub(super) fn latest_per_endpoint(
    by_event: &impl ReadableTable<(u128, u128), ()>,
    attempts: &impl ReadableTable<u128, &'static [u8]>,
    event: EventId,
) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError> {
    // Attempt ids grow with time, so the last one seen per endpoint is its latest.
    let mut latest = HashMap::new();
    let event = event.as_u128();
    for entry in by_event.range((event, 0)..=(event, u128::MAX))? {
        let (key, _) = entry?;
        if let Some((endpoint, status, made)) = outcome_in(attempts, key.value().1)? {
            latest.insert(endpoint, (status, made));
        }
    }
    Ok(latest)
}

impl Attempts for RedbStore {
    async fn list_attempts(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, ListError> {
        self.attempts_page(owner, endpoint, request, status, true)
    }

    async fn endpoint_attempts_page(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, StoreError> {
        bound_page(self.attempts_page(owner, endpoint, request, status, false))
    }

    async fn app_attempt(&self, owner: Owner, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        self.read(|tx| {
            let record: Option<AttemptRecord> =
                attempt_in(&tx.open_table(tables::ATTEMPTS)?, id.as_u128(), &self.names)?;
            record.filter(|r| r.app == owner.app).map(|r| r.opened(&self.sealer)).transpose()
        })
    }

    async fn attempt(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        self.read(|tx| {
            let record: Option<AttemptRecord> =
                attempt_in(&tx.open_table(tables::ATTEMPTS)?, id.as_u128(), &self.names)?;
            record
                .filter(|r| r.app == owner.app && r.endpoint_id == endpoint)
                .map(|r| r.opened(&self.sealer))
                .transpose()
        })
    }

    async fn attempts_of_type(
        &self,
        owner: Owner,
        event_type: String,
        max_events: usize,
    ) -> Result<Option<Vec<AttemptRecord>>, StoreError> {
        self.read(|tx| {
            let by_type = tx.open_table(tables::EVENTS_BY_TYPE)?;
            let (app, hash) = (owner.app.as_u128(), tables::index_hash(&event_type));
            let mut events = Vec::new();
            // Ids only: a type sharing the hash adds events whose attempts the caller's
            // check of each attempt's type leaves out.
            for entry in by_type.range((app, hash, 0)..=(app, hash, u128::MAX))? {
                events.push(entry?.0.value().2);
                if events.len() > max_events {
                    return Ok(None);
                }
            }
            let index = tx.open_table(tables::EVENT_ATTEMPTS)?;
            let attempts = tx.open_table(tables::ATTEMPTS)?;
            let mut out = Vec::new();
            for event in events {
                for entry in index.range((event, 0)..=(event, u128::MAX))? {
                    let Some(record) = attempt_in(&attempts, entry?.0.value().1, &self.names)? else {
                        continue;
                    };
                    if record.app == owner.app {
                        out.push(record.opened(&self.sealer)?);
                    }
                }
            }
            Ok(Some(out))
        })
    }

    async fn event_attempts(
        &self,
        owner: Owner,
        event: EventId,
        limit: usize,
    ) -> Result<(Vec<AttemptRecord>, bool), StoreError> {
        self.read(|tx| {
            let index = tx.open_table(tables::EVENT_ATTEMPTS)?;
            let attempts = tx.open_table(tables::ATTEMPTS)?;
            let e = event.as_u128();
            let mut out = Vec::new();
            for entry in index.range((e, 0)..=(e, u128::MAX))?.rev() {
                let (key, _) = entry?;
                let Some(record) = attempt_in(&attempts, key.value().1, &self.names)? else {
                    continue;
                };
                if record.app != owner.app {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(record.opened(&self.sealer)?);
            }
            Ok((out, false))
        })
    }

    #[cfg(test)]
    async fn put_raw_attempt_for_test(&self, id: DeliveryId, bytes: Option<Vec<u8>>) -> () {
        self.write(|tx| {
            let mut attempts = tx.open_table(tables::ATTEMPTS)?;
            match bytes {
                Some(bytes) => attempts.insert(id.as_u128(), bytes.as_slice())?,
                None => attempts.remove(id.as_u128())?,
            };
            Ok(())
        })
        .unwrap();
    }
}

impl RedbStore {
    /// A page of an endpoint's attempts, optionally of one status; with `check_cursor`, a
    /// cursor must name one of its attempts (else it is a bound only).
    fn attempts_page(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
        check_cursor: bool,
    ) -> Result<Page<AttemptRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let index = tx.open_table(tables::ENDPOINT_ATTEMPTS).map_err(StoreError::from)?;
            let attempts = tx.open_table(tables::ATTEMPTS).map_err(StoreError::from)?;
            let pending = tx.open_table(tables::ENDPOINT_PENDING).map_err(StoreError::from)?;
            let failures = tx.open_table(tables::ENDPOINT_FAILURES).map_err(StoreError::from)?;
            let (m, e) = (owner.app.as_u128(), endpoint.as_u128());
            let request = PageRequest { limit: request.limit, cursor: request.cursor.position() };
            if check_cursor
                && let Cursor::After(id) | Cursor::Before(id) = request.cursor
                && index.get((m, e, id)).map_err(StoreError::from)?.is_none()
            {
                return Err(ListError::UnknownCursor);
            }
            let mut items = Vec::new();
            let Some((from, to, upwards)) = scan_bounds(request.cursor, &(0..=u128::MAX)) else {
                return Ok(finish_page(items, request));
            };
            // Each status has its index: pending attempts are the endpoint's pending
            // entries, failed and retrying ones its failures, and succeeded ones the rest.
            let ids: Box<dyn DoubleEndedIterator<Item = Result<u128, redb::StorageError>>> = match status {
                Some(AttemptStatus::Pending) => Box::new(
                    pending.range((e, from)..=(e, to)).map_err(StoreError::from)?.map(|r| r.map(|(k, _)| k.value().1)),
                ),
                Some(AttemptStatus::Retrying | AttemptStatus::Failed) => Box::new(
                    failures
                        .range((m, e, from)..=(m, e, to))
                        .map_err(StoreError::from)?
                        .map(|r| r.map(|(k, _)| k.value().2)),
                ),
                Some(AttemptStatus::Succeeded) | None => Box::new(
                    index
                        .range((m, e, from)..=(m, e, to))
                        .map_err(StoreError::from)?
                        .map(|r| r.map(|(k, _)| k.value().2)),
                ),
            };
            let ids: Box<dyn Iterator<Item = Result<u128, redb::StorageError>>> =
                if upwards { Box::new(ids) } else { Box::new(ids.rev()) };
            for id in ids {
                let id = id.map_err(StoreError::from)?;
                if status == Some(AttemptStatus::Succeeded)
                    && (pending.get((e, id)).map_err(StoreError::from)?.is_some()
                        || failures.get((m, e, id)).map_err(StoreError::from)?.is_some())
                {
                    continue;
                }
                let Some(record) = attempt_in(&attempts, id, &self.names)? else {
                    continue;
                };
                if status.is_none_or(|s| s == record.status) {
                    items.push(record.opened(&self.sealer)?);
                    if items.len() > request.limit {
                        break;
                    }
                }
            }
            Ok(finish_page(items, request))
        })
    }
}
