//! Delivery attempts and the durable queue that schedules them.
//!
//! A delivery is one event going to one endpoint; each try is an attempt record (`wd_`).
//! The next attempt of a delivery exists as a `pending` record with a queue entry from the
//! moment it is scheduled, and its outcome, the removal of its queue entry, and the
//! scheduling of the following attempt are committed in one transaction.

use std::time::Duration;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::endpoints::{EndpointRecord, EndpointStatus};
use super::events::{NewEvent, Published};
use super::pagination::{Cursor, ListError, Page, PageRequest};
use super::tables::{self, PARKED};
use super::{Store, StoreError, decode_found, encode};
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::mode::Mode;

const TABLE: &str = "attempts";

/// A queue key: `(due time in Unix ms, attempt id)`.
pub type QueueKey = (u64, u128);

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptStatus {
    /// Scheduled or in flight.
    Pending,
    /// Answered with a 2xx.
    Succeeded,
    /// Failed; another attempt is scheduled (`next_retry_at`).
    Retrying,
    /// Failed, and no attempt follows.
    Failed,
}

impl AttemptStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "pending",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Retrying => "retrying",
            AttemptStatus::Failed => "failed",
        }
    }
}

/// One delivery attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Its id.
    pub id: DeliveryId,
    /// The mode of its endpoint and event.
    pub mode: Mode,
    /// Where it goes.
    pub endpoint_id: EndpointId,
    /// What it carries.
    pub event_id: EventId,
    /// The event's type, kept here so lists need not read events.
    pub event_type: String,
    /// 1 for the first try of a delivery, 2 for the first retry, ...
    pub attempt: u32,
    /// Where it stands.
    pub status: AttemptStatus,
    /// The HTTP status the endpoint answered, if it answered.
    pub response_status: Option<u16>,
    /// The start of the response body (at most 2 KiB).
    pub response_body: Option<String>,
    /// Why it failed without an HTTP answer (or with a non-2xx one).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: Option<u64>,
    /// When it was made, or is scheduled for while pending (Unix seconds).
    pub created: i64,
    /// When the next attempt goes, while `retrying`.
    pub next_retry_at: Option<i64>,
    /// Its place in the queue (Unix ms) while pending.
    pub due_ms: u64,
    /// The request headers sent, once sent.
    pub request_headers: Vec<(String, String)>,
}

/// What happened when an attempt was made.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The attempt.
    pub attempt_id: u128,
    /// Its queue entry.
    pub queue_key: QueueKey,
    /// Whether the endpoint answered 2xx in time.
    pub succeeded: bool,
    /// The answer's status, if any.
    pub response_status: Option<u16>,
    /// The start of the answer's body.
    pub response_body: Option<String>,
    /// A human description of the failure.
    pub error: Option<String>,
    /// Time taken.
    pub duration_ms: u64,
    /// When it was made (Unix seconds).
    pub attempted_at: i64,
    /// The headers that were sent.
    pub request_headers: Vec<(String, String)>,
    /// The least delay before the next attempt the endpoint asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// When failing endpoints are disabled automatically.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
}

/// Store figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Attempts in the queue.
    pub queue_depth: u64,
    /// How long the first queued attempt has been due, in ms (0 if not yet due).
    pub oldest_due_ms: u64,
    /// Enabled endpoints whose latest attempt did not fail, both modes.
    pub healthy_endpoints: u64,
    /// Enabled endpoints whose latest attempts are failing, both modes.
    pub degraded_endpoints: u64,
    /// Disabled endpoints, both modes.
    pub disabled_endpoints: u64,
}

/// What [`Store::retry_now`] did.
#[derive(Debug, Clone)]
pub enum RetryNow {
    /// The pending attempt now goes at once; its new queue key and record.
    Moved(QueueKey, Box<AttemptRecord>),
    /// No attempt with that id belongs to that endpoint in that mode.
    NoSuchAttempt,
    /// The attempt has no scheduled retry (it has this status and nothing follows it).
    NotScheduled(AttemptStatus),
    /// The retry waits for its endpoint to be enabled.
    EndpointDisabled,
}

/// What recording a batch of results changed in the queue.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Queue keys of the retries scheduled.
    pub scheduled: Vec<QueueKey>,
    /// Attempts whose delivery ended (succeeded or failed for good).
    pub finished: usize,
}

/// What [`Store::publish_and_record`] wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// What each publish did, in order.
    pub published: Vec<Published>,
    /// Queue keys of the published events' first attempts.
    pub first_attempts: Vec<QueueKey>,
    /// What recording the results changed.
    pub recorded: Recorded,
}

/// A queue entry due for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueEntry {
    /// Its queue key.
    pub key: QueueKey,
    /// The endpoint it goes to.
    pub endpoint: u128,
    /// The mode of the endpoint.
    pub mode: u8,
}

/// Everything a worker needs to make one attempt.
#[derive(Debug, Clone)]
pub struct Job {
    /// The attempt.
    pub attempt: AttemptRecord,
    /// The endpoint, unless it was deleted.
    pub endpoint: Option<EndpointRecord>,
    /// The event payload, unless it was pruned.
    pub body: Option<Vec<u8>>,
}

/// The tables a scheduling write touches, opened once per transaction.
pub(crate) struct DeliveryTables<'txn> {
    attempts: Table<'txn, u128, &'static [u8]>,
    by_endpoint: Table<'txn, (u8, u128, u128), ()>,
    by_event: Table<'txn, (u128, u128), ()>,
    stats: Table<'txn, (u8, u64, u128, u8), u64>,
    failures: Table<'txn, (u8, u128), ()>,
    queue: Table<'txn, (u64, u128), (u8, u128)>,
    endpoint_pending: Table<'txn, (u128, u128), u64>,
    parked: Table<'txn, (u128, u128), ()>,
    event_pending: Table<'txn, u128, u32>,
    /// Per-minute outcome counts tallied in this transaction, written together by
    /// [`DeliveryTables::write_tallies`]: a batch of hundreds of results to one endpoint
    /// in one minute is one counter update, not hundreds.
    tallies: std::collections::HashMap<(u8, u64, u128, u8), u64>,
}

impl<'txn> DeliveryTables<'txn> {
    /// Opens the tables in `tx`.
    pub(crate) fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            attempts: tx.open_table(tables::ATTEMPTS)?,
            by_endpoint: tx.open_table(tables::ENDPOINT_ATTEMPTS)?,
            by_event: tx.open_table(tables::EVENT_ATTEMPTS)?,
            stats: tx.open_table(tables::DELIVERY_STATS)?,
            failures: tx.open_table(tables::FAILED_ATTEMPTS)?,
            queue: tx.open_table(tables::QUEUE)?,
            endpoint_pending: tx.open_table(tables::ENDPOINT_PENDING)?,
            parked: tx.open_table(tables::PARKED_ATTEMPTS)?,
            event_pending: tx.open_table(tables::EVENT_PENDING)?,
            tallies: std::collections::HashMap::new(),
        })
    }

    /// Schedules attempt `number` of `event` to `endpoint` at `due_ms`; returns its key.
    pub(crate) fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event_id: EventId,
        event_type: &str,
        number: u32,
        due_ms: u64,
    ) -> Result<QueueKey, StoreError> {
        let record = AttemptRecord {
            id: DeliveryId::new(),
            mode: endpoint.mode,
            endpoint_id: endpoint.id,
            event_id,
            event_type: event_type.to_string(),
            attempt: number,
            status: AttemptStatus::Pending,
            response_status: None,
            response_body: None,
            error: None,
            duration_ms: None,
            created: (due_ms / 1000) as i64,
            next_retry_at: None,
            due_ms,
            request_headers: Vec::new(),
        };
        let id = record.id.as_u128();
        let mode = endpoint.mode.as_u8();
        let endpoint_id = endpoint.id.as_u128();
        self.attempts.insert(id, encode(TABLE, &record)?.as_slice())?;
        self.by_endpoint.insert((mode, endpoint_id, id), ())?;
        self.by_event.insert((event_id.as_u128(), id), ())?;
        let parked = endpoint.status == EndpointStatus::Disabled;
        if parked {
            self.endpoint_pending.insert((endpoint_id, id), PARKED)?;
            self.parked.insert((endpoint_id, id), ())?;
        } else {
            self.queue.insert((due_ms, id), (mode, endpoint_id))?;
            self.endpoint_pending.insert((endpoint_id, id), due_ms)?;
        }
        Ok((due_ms, id))
    }

    /// Adds `n` to an event's count of unfinished deliveries.
    pub(crate) fn add_pending(&mut self, event: u128, n: u32) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        let current = self.event_pending.get(event)?.map_or(0, |v| v.value());
        self.event_pending.insert(event, current.saturating_add(n))?;
        Ok(())
    }

    fn finish_one(&mut self, event: u128) -> Result<(), StoreError> {
        let current = self.event_pending.get(event)?.map_or(0, |v| v.value());
        if current <= 1 {
            self.event_pending.remove(event)?;
        } else {
            self.event_pending.insert(event, current - 1)?;
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
        let mode = record.mode.as_u8();
        let key = (mode, (record.created.max(0) as u64) / 60, record.endpoint_id.as_u128(), outcome);
        *self.tallies.entry(key).or_default() += 1;
        if outcome == tables::OUTCOME_FAILED {
            self.failures.insert((mode, record.id.as_u128()), ())?;
        }
        Ok(())
    }

    /// Adds the counts [`DeliveryTables::tally`] gathered to the statistics table.
    fn write_tallies(&mut self) -> Result<(), StoreError> {
        for (key, n) in std::mem::take(&mut self.tallies) {
            let count = self.stats.get(key)?.map_or(0, |v| v.value());
            self.stats.insert(key, count + n)?;
        }
        Ok(())
    }

    fn load(&self, id: u128) -> Result<Option<AttemptRecord>, StoreError> {
        decode_found(TABLE, self.attempts.get(id)?)
    }

    fn save(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.attempts.insert(record.id.as_u128(), encode(TABLE, record)?.as_slice())?;
        Ok(())
    }

    /// Takes a pending attempt off the queue for good (its delivery is over).
    fn unqueue(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        let id = record.id.as_u128();
        self.queue.remove((record.due_ms, id))?;
        let was = self.endpoint_pending.remove((record.endpoint_id.as_u128(), id))?.map(|v| v.value());
        if was == Some(PARKED) {
            self.parked.remove((record.endpoint_id.as_u128(), id))?;
        }
        Ok(())
    }

    /// Ends every pending delivery of an endpoint (it is being deleted): each pending
    /// attempt is marked failed with `reason`. Returns how many there were.
    pub(crate) fn cancel_endpoint(&mut self, endpoint: u128, reason: &str, now: i64) -> Result<usize, StoreError> {
        let pending: Vec<u128> = self
            .endpoint_pending
            .range((endpoint, 0)..=(endpoint, u128::MAX))?
            .map(|e| e.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        for id in &pending {
            if let Some(mut record) = self.load(*id)? {
                self.unqueue(&record)?;
                record.status = AttemptStatus::Failed;
                record.error = Some(reason.to_string());
                record.created = now;
                self.save(&record)?;
                self.finish_one(record.event_id.as_u128())?;
            }
        }
        Ok(pending.len())
    }
}

/// An endpoint's health entry: (first failure of the current run in Unix ms, failures
/// in the run); `None` when healthy.
type HealthEntry = Option<(u64, u32)>;

/// The health entries of the endpoints in one batch of results, read once and written
/// once per batch (a batch is often hundreds of attempts to a few endpoints).
struct HealthBatch<'txn> {
    table: Table<'txn, u128, (u64, u32)>,
    /// Endpoint → (its entry as read, its entry after the results seen so far);
    /// `None`: healthy.
    seen: std::collections::HashMap<u128, (HealthEntry, HealthEntry)>,
}

impl<'txn> HealthBatch<'txn> {
    fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self { table: tx.open_table(tables::ENDPOINT_HEALTH)?, seen: std::collections::HashMap::new() })
    }

    /// Counts one result; returns why the endpoint must be disabled, if it must.
    fn observe(
        &mut self,
        endpoint: u128,
        result: &AttemptResult,
        policy: HealthPolicy,
    ) -> Result<Option<String>, StoreError> {
        let slot = match self.seen.entry(endpoint) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let stored = self.table.get(endpoint)?.map(|v| v.value());
                slot.insert((stored, stored))
            }
        };
        if result.succeeded {
            slot.1 = None;
            return Ok(None);
        }
        let at_ms = (result.attempted_at.max(0) as u64) * 1000;
        let (since, failures) = slot.1.unwrap_or((at_ms, 0));
        let failures = failures.saturating_add(1);
        slot.1 = Some((since, failures));
        if result.response_status == Some(410) {
            return Ok(Some("the endpoint answered 410 Gone".into()));
        }
        let failing_for = Duration::from_millis(at_ms.saturating_sub(since));
        if failing_for >= policy.disable_after {
            let since = std::time::UNIX_EPOCH + Duration::from_millis(since);
            return Ok(Some(format!(
                "every attempt failed for {} ({failures} attempts since {})",
                humantime::format_duration(Duration::from_secs(failing_for.as_secs())),
                humantime::format_rfc3339_seconds(since)
            )));
        }
        Ok(None)
    }

    /// Writes what changed (a healthy endpoint that stayed healthy costs no write).
    fn save(mut self) -> Result<(), StoreError> {
        for (endpoint, (stored, now)) in self.seen {
            match now {
                _ if now == stored => None,
                Some(entry) => self.table.insert(endpoint, entry)?,
                None => self.table.remove(endpoint)?,
            };
        }
        Ok(())
    }
}

/// Disables an endpoint automatically, saying why. Already disabled: left as it is.
fn disable_endpoint(
    endpoints: &mut Table<'_, (u8, u128), &'static [u8]>,
    key: (u8, u128),
    reason: &str,
) -> Result<(), StoreError> {
    let found: Option<EndpointRecord> = decode_found(tables_name::ENDPOINTS, endpoints.get(key)?)?;
    let Some(mut endpoint) = found.filter(|e| e.status == EndpointStatus::Enabled) else {
        return Ok(());
    };
    endpoint.status = EndpointStatus::Disabled;
    endpoint.disabled_reason = Some(reason.to_string());
    endpoints.insert(key, encode(tables_name::ENDPOINTS, &endpoint)?.as_slice())?;
    tracing::warn!(endpoint = %endpoint.id, reason, "endpoint disabled automatically");
    Ok(())
}

/// Puts the parked attempts of enabled endpoints (all, or just `only`) back on the queue.
fn unpark_in(tx: &WriteTransaction, only: Option<EndpointId>, now_ms: u64) -> Result<Vec<QueueKey>, StoreError> {
    let endpoints = tx.open_table(tables::ENDPOINTS)?;
    let mut t = DeliveryTables::open(tx)?;
    let range = match only {
        Some(id) => (id.as_u128(), 0)..=(id.as_u128(), u128::MAX),
        None => (0, 0)..=(u128::MAX, u128::MAX),
    };
    let parked: Vec<(u128, u128)> =
        t.parked.range(range)?.map(|e| e.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
    let mut keys = Vec::new();
    for (endpoint_id, attempt_id) in parked {
        let Some(mut record) = t.load(attempt_id)? else { continue };
        let endpoint: Option<EndpointRecord> =
            decode_found(tables_name::ENDPOINTS, endpoints.get((record.mode.as_u8(), endpoint_id))?)?;
        if endpoint.is_none_or(|e| e.status != EndpointStatus::Enabled) {
            continue;
        }
        record.due_ms = now_ms;
        t.save(&record)?;
        t.queue.insert((now_ms, attempt_id), (record.mode.as_u8(), endpoint_id))?;
        t.endpoint_pending.insert((endpoint_id, attempt_id), now_ms)?;
        t.parked.remove((endpoint_id, attempt_id))?;
        keys.push((now_ms, attempt_id));
    }
    Ok(keys)
}

/// Whether an event reached every endpoint it went to: `Some(true)` if the latest attempt
/// to each endpoint succeeded, `Some(false)` if one did not (pending, retrying, failed),
/// `None` if it went nowhere.
pub(crate) fn delivered_everywhere(
    by_event: &impl ReadableTable<(u128, u128), ()>,
    attempts: &impl ReadableTable<u128, &'static [u8]>,
    event: u128,
) -> Result<Option<bool>, StoreError> {
    // Attempt ids grow with time, so the last one seen per endpoint is its latest.
    let mut latest: std::collections::HashMap<EndpointId, AttemptStatus> = std::collections::HashMap::new();
    for entry in by_event.range((event, 0)..=(event, u128::MAX))? {
        let (key, _) = entry?;
        if let Some(record) = decode_found::<AttemptRecord>(TABLE, attempts.get(key.value().1)?)? {
            latest.insert(record.endpoint_id, record.status);
        }
    }
    if latest.is_empty() {
        return Ok(None);
    }
    Ok(Some(latest.values().all(|s| *s == AttemptStatus::Succeeded)))
}

/// What [`Store::recover_endpoint`] found (and, unless it was a dry run, resent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Events whose delivery to the endpoint had failed for good and are (or would be)
    /// sent again.
    pub events: usize,
    /// More such events are left beyond [`MAX_RECOVER`]: call again.
    pub has_more: bool,
    /// Queue keys of the new attempts (empty on a dry run, or while the endpoint is
    /// disabled: they wait, parked, until it is enabled).
    pub scheduled: Vec<QueueKey>,
}

/// The most events one recovery resends, so it is one bounded transaction; the next
/// call picks up where it ended (the resent events are no longer failed).
pub const MAX_RECOVER: usize = 10_000;

/// Events to resend (id, type), and whether more are left.
type FailedDeliveries = (Vec<(u128, String)>, bool);

/// The events (id, type) whose latest attempt to an endpoint, among attempts made since
/// `since` (Unix seconds), failed for good and that still exist, oldest first, at most
/// [`MAX_RECOVER`], and whether there are more. `None`: no such endpoint in this mode.
fn failed_deliveries(
    tx: &ReadTransaction,
    mode: Mode,
    id: EndpointId,
    since: i64,
) -> Result<Option<FailedDeliveries>, StoreError> {
    let (m, key) = (mode.as_u8(), id.as_u128());
    if tx.open_table(tables::ENDPOINTS)?.get((m, key))?.is_none() {
        return Ok(None);
    }
    let by_endpoint = tx.open_table(tables::ENDPOINT_ATTEMPTS)?;
    let attempts = tx.open_table(tables::ATTEMPTS)?;
    let events = tx.open_table(tables::EVENTS)?;
    let start = crate::ids::first_id_at((since.max(0) as u64).saturating_mul(1000));
    // The latest attempt per event, in the order the events were first attempted.
    let mut latest: Vec<(u128, AttemptStatus, String)> = Vec::new();
    let mut position: std::collections::HashMap<u128, usize> = std::collections::HashMap::new();
    for entry in by_endpoint.range((m, key, start)..=(m, key, u128::MAX))? {
        let attempt = entry?.0.value().2;
        let Some(record) = decode_found::<AttemptRecord>(TABLE, attempts.get(attempt)?)? else { continue };
        let event = record.event_id.as_u128();
        match position.get(&event) {
            Some(&at) => latest[at].1 = record.status,
            None => {
                position.insert(event, latest.len());
                latest.push((event, record.status, record.event_type));
            }
        }
    }
    let mut failed = Vec::new();
    for (event, status, event_type) in latest {
        // A pruned event has no body left to send.
        if status != AttemptStatus::Failed || events.get((m, event))?.is_none() {
            continue;
        }
        if failed.len() == MAX_RECOVER {
            return Ok(Some((failed, true)));
        }
        failed.push((event, event_type));
    }
    Ok(Some((failed, false)))
}

/// When the next attempt of a delivery goes, if one does: the configured delay after
/// attempt `number` (1-based), stretched by up to 10% at random so retries of many
/// deliveries that failed together do not all arrive at the same instant.
pub fn next_retry_delay(schedule: &[Duration], number: u32) -> Option<Duration> {
    let base = *schedule.get(number as usize - 1)?;
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let fraction = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.1;
    Some(base.mul_f64(1.0 + fraction))
}

impl Store {
    /// Queue entries due at or before `until_ms`, after `after` (exclusive), in due order.
    pub fn due_entries(
        &self,
        after: Option<QueueKey>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let mut out = Vec::new();
            let start = match after {
                Some((due, id)) if id == u128::MAX => (due.saturating_add(1), 0),
                Some((due, id)) => (due, id + 1),
                None => (0, 0),
            };
            if start.0 > until_ms {
                return Ok(out);
            }
            for entry in queue.range(start..=(until_ms, u128::MAX))? {
                let (key, value) = entry?;
                let (mode, endpoint) = value.value();
                out.push(DueEntry { key: key.value(), endpoint, mode });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// The due time of the first queue entry after `after` (exclusive), if any.
    pub fn next_due_after(&self, after: Option<QueueKey>) -> Result<Option<u64>, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let first = match after {
                None => queue.first()?.map(|(k, _)| k.value().0),
                Some((due, id)) => {
                    let start = if id == u128::MAX { (due.saturating_add(1), 0) } else { (due, id + 1) };
                    queue.range(start..)?.next().transpose()?.map(|(k, _)| k.value().0)
                }
            };
            Ok(first)
        })
    }

    /// What `/metrics` reads from the store, in one snapshot.
    pub fn metrics_snapshot(&self, now_ms: u64) -> Result<MetricsSnapshot, StoreError> {
        self.read(|tx| {
            let queue = tx.open_table(tables::QUEUE)?;
            let oldest = queue.first()?.map(|(k, _)| k.value().0);
            let mut snapshot = MetricsSnapshot {
                queue_depth: queue.len()?,
                oldest_due_ms: oldest.map_or(0, |due| now_ms.saturating_sub(due)),
                ..MetricsSnapshot::default()
            };
            let health = tx.open_table(tables::ENDPOINT_HEALTH)?;
            for entry in tx.open_table(tables::ENDPOINTS)?.iter()? {
                let (key, value) = entry?;
                let endpoint: EndpointRecord = crate::store::decode(tables_name::ENDPOINTS, value.value())?;
                match endpoint.status {
                    EndpointStatus::Disabled => snapshot.disabled_endpoints += 1,
                    EndpointStatus::Enabled if health.get(key.value().1)?.is_some() => snapshot.degraded_endpoints += 1,
                    EndpointStatus::Enabled => snapshot.healthy_endpoints += 1,
                }
            }
            Ok(snapshot)
        })
    }

    /// How many attempts are queued (pending and not parked).
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.read(|tx| Ok(tx.open_table(tables::QUEUE)?.len()?))
    }

    /// Loads what workers need for these attempts, in one snapshot.
    pub fn jobs(&self, attempt_ids: &[u128]) -> Result<Vec<Option<Job>>, StoreError> {
        self.read(|tx| {
            let attempts = tx.open_table(tables::ATTEMPTS)?;
            let endpoints = tx.open_table(tables::ENDPOINTS)?;
            let bodies = tx.open_table(tables::EVENT_BODIES)?;
            let mut out = Vec::with_capacity(attempt_ids.len());
            for id in attempt_ids {
                let Some(attempt) = decode_found::<AttemptRecord>(TABLE, attempts.get(*id)?)? else {
                    out.push(None);
                    continue;
                };
                let key = (attempt.mode.as_u8(), attempt.endpoint_id.as_u128());
                let endpoint = decode_found(tables_name::ENDPOINTS, endpoints.get(key)?)?;
                let body = bodies.get(attempt.event_id.as_u128())?.map(|b| b.value().to_vec());
                out.push(Some(Job { attempt, endpoint, body }));
            }
            Ok(out)
        })
    }

    /// Records the results of attempts in one transaction: each attempt gets its outcome,
    /// leaves the queue, and, if it failed with retries left, its delivery's next attempt
    /// is scheduled by `retry_delay(attempt number)`, or later if the endpoint asked for
    /// more time with `Retry-After`. Endpoint health is tracked on the way: an endpoint
    /// that answers `410 Gone`, or whose attempts have all failed for
    /// `policy.disable_after`, is disabled (its retries then wait, parked).
    pub fn record_results(
        &self,
        results: &[AttemptResult],
        now_ms: u64,
        policy: HealthPolicy,
        retry_delay: impl Fn(u32) -> Option<Duration>,
    ) -> Result<Recorded, StoreError> {
        self.write(|tx| record_in(tx, results, now_ms, policy, retry_delay))
    }

    /// Publishes `events` and records `results` in one transaction: what the engine's
    /// writer commits, so publishes and results share one commit and one fsync.
    pub fn publish_and_record(
        &self,
        events: &[NewEvent],
        results: &[AttemptResult],
        now_ms: u64,
        policy: HealthPolicy,
        retry_delay: impl Fn(u32) -> Option<Duration>,
    ) -> Result<Written, StoreError> {
        self.write(|tx| {
            let (published, first_attempts) = super::events::publish_in(tx, events, now_ms)?;
            let recorded = record_in(tx, results, now_ms, policy, retry_delay)?;
            Ok(Written { published, first_attempts, recorded })
        })
    }

    /// Takes queue entries the scheduler will not send off the queue: pending attempts of
    /// a disabled endpoint wait (parked) until it is enabled; entries whose attempt is no
    /// longer pending just go. Entries whose endpoint was enabled meanwhile stay queued;
    /// their keys are returned.
    pub fn park(&self, keys: &[QueueKey]) -> Result<Vec<QueueKey>, StoreError> {
        self.write(|tx| {
            let endpoints = tx.open_table(tables::ENDPOINTS)?;
            let mut t = DeliveryTables::open(tx)?;
            let mut still_queued = Vec::new();
            for key in keys {
                let record = t.load(key.1)?.filter(|r| r.status == AttemptStatus::Pending);
                let Some(record) = record else {
                    t.queue.remove(*key)?;
                    continue;
                };
                let endpoint: Option<EndpointRecord> = decode_found(
                    tables_name::ENDPOINTS,
                    endpoints.get((record.mode.as_u8(), record.endpoint_id.as_u128()))?,
                )?;
                if endpoint.is_some_and(|e| e.status == EndpointStatus::Enabled) {
                    still_queued.push(*key);
                    continue;
                }
                t.queue.remove(*key)?;
                t.endpoint_pending.insert((record.endpoint_id.as_u128(), key.1), PARKED)?;
                t.parked.insert((record.endpoint_id.as_u128(), key.1), ())?;
            }
            Ok(still_queued)
        })
    }

    /// Puts the parked attempts of every enabled endpoint back on the queue, due at
    /// `now_ms` (at start-up); returns their keys.
    pub fn unpark(&self, now_ms: u64) -> Result<Vec<QueueKey>, StoreError> {
        self.write(|tx| unpark_in(tx, None, now_ms))
    }

    /// An endpoint was enabled through the API: its parked attempts go back on the queue,
    /// due at `now_ms`, and its health starts over. Returns the queue keys.
    pub fn resume_endpoint(&self, id: EndpointId, now_ms: u64) -> Result<Vec<QueueKey>, StoreError> {
        self.write(|tx| {
            tx.open_table(tables::ENDPOINT_HEALTH)?.remove(id.as_u128())?;
            unpark_in(tx, Some(id), now_ms)
        })
    }

    /// Resends to an endpoint every event whose delivery to it failed for good (its latest
    /// attempt to the endpoint is `failed`) among attempts made since `since` (Unix
    /// seconds). `dry_run` only counts. `None`: no such endpoint in this mode.
    pub fn recover_endpoint(
        &self,
        mode: Mode,
        id: EndpointId,
        since: i64,
        dry_run: bool,
        now_ms: u64,
    ) -> Result<Option<Recovery>, StoreError> {
        // The search reads a snapshot, so however many attempts it walks, publishing and
        // recording go on; only the resending takes the writer.
        let Some((failed, has_more)) = self.read(|tx| failed_deliveries(tx, mode, id, since))? else {
            return Ok(None);
        };
        let mut recovery = Recovery { events: failed.len(), has_more, scheduled: Vec::new() };
        if dry_run || failed.is_empty() {
            return Ok(Some(recovery));
        }
        self.write(|tx| {
            let endpoint: Option<EndpointRecord> = decode_found(
                tables_name::ENDPOINTS,
                tx.open_table(tables::ENDPOINTS)?.get((mode.as_u8(), id.as_u128()))?,
            )?;
            let Some(endpoint) = endpoint else { return Ok(None) }; // deleted meanwhile
            let mut t = DeliveryTables::open(tx)?;
            for (event, event_type) in &failed {
                let key = t.schedule(&endpoint, EventId(*event), event_type, 1, now_ms)?;
                t.add_pending(*event, 1)?;
                if endpoint.status == EndpointStatus::Enabled {
                    recovery.scheduled.push(key);
                }
            }
            Ok(Some(recovery))
        })
    }

    /// One page of an endpoint's attempts, newest first, optionally of one status.
    pub fn list_attempts(
        &self,
        mode: Mode,
        endpoint: EndpointId,
        request: PageRequest,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, ListError> {
        self.with_db(|db| {
            let tx = db.begin_read().map_err(StoreError::from)?;
            let index = tx.open_table(tables::ENDPOINT_ATTEMPTS).map_err(StoreError::from)?;
            let attempts = tx.open_table(tables::ATTEMPTS).map_err(StoreError::from)?;
            let (m, e) = (mode.as_u8(), endpoint.as_u128());
            if let Cursor::After(id) | Cursor::Before(id) = request.cursor
                && index.get((m, e, id)).map_err(StoreError::from)?.is_none()
            {
                return Err(ListError::UnknownCursor);
            }
            let keys: Box<dyn Iterator<Item = Result<_, redb::StorageError>>> = match request.cursor {
                Cursor::Start => Box::new(index.range((m, e, 0)..=(m, e, u128::MAX)).map_err(StoreError::from)?.rev()),
                Cursor::After(id) => Box::new(index.range((m, e, 0)..(m, e, id)).map_err(StoreError::from)?.rev()),
                Cursor::Before(id) => {
                    Box::new(index.range((m, e, id.saturating_add(1))..=(m, e, u128::MAX)).map_err(StoreError::from)?)
                }
            };
            let mut items = Vec::new();
            for entry in keys {
                let (key, _) = entry.map_err(StoreError::from)?;
                let id = key.value().2;
                let Some(record) = decode_found::<AttemptRecord>(TABLE, attempts.get(id).map_err(StoreError::from)?)?
                else {
                    continue;
                };
                if status.is_none_or(|s| s == record.status) {
                    items.push(record);
                    if items.len() > request.limit {
                        break;
                    }
                }
            }
            let has_more = items.len() > request.limit;
            items.truncate(request.limit);
            if let Cursor::Before(_) = request.cursor {
                items.reverse();
            }
            Ok(Page { items, has_more })
        })
    }

    /// One attempt of an endpoint.
    pub fn attempt(
        &self,
        mode: Mode,
        endpoint: EndpointId,
        id: DeliveryId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        self.read(|tx| {
            let record: Option<AttemptRecord> =
                decode_found(TABLE, tx.open_table(tables::ATTEMPTS)?.get(id.as_u128())?)?;
            Ok(record.filter(|r| r.mode == mode && r.endpoint_id == endpoint))
        })
    }

    /// Moves a scheduled attempt to now: `id` names either the pending attempt itself or
    /// the `retrying` attempt whose retry it is.
    pub fn retry_now(
        &self,
        mode: Mode,
        endpoint: EndpointId,
        id: DeliveryId,
        now_ms: u64,
    ) -> Result<RetryNow, StoreError> {
        self.write(|tx| {
            let mut t = DeliveryTables::open(tx)?;
            let named = t.load(id.as_u128())?.filter(|r| r.mode == mode && r.endpoint_id == endpoint);
            let Some(named) = named else { return Ok(RetryNow::NoSuchAttempt) };
            let target = match named.status {
                AttemptStatus::Pending => named,
                AttemptStatus::Retrying => {
                    let endpoint_key = endpoint.as_u128();
                    let pending: Vec<u128> = t
                        .endpoint_pending
                        .range((endpoint_key, 0)..=(endpoint_key, u128::MAX))?
                        .map(|e| e.map(|(k, _)| k.value().1))
                        .collect::<Result<_, _>>()?;
                    let mut successor = None;
                    for candidate in pending {
                        if let Some(record) = t.load(candidate)?
                            && record.event_id == named.event_id
                            && record.attempt == named.attempt + 1
                        {
                            successor = Some(record);
                            break;
                        }
                    }
                    match successor {
                        Some(record) => record,
                        None => return Ok(RetryNow::NotScheduled(named.status)),
                    }
                }
                other => return Ok(RetryNow::NotScheduled(other)),
            };
            let key = (endpoint.as_u128(), target.id.as_u128());
            if t.endpoint_pending.get(key)?.map(|v| v.value()) == Some(PARKED) {
                return Ok(RetryNow::EndpointDisabled);
            }
            let mut record = target;
            t.queue.remove((record.due_ms, record.id.as_u128()))?;
            record.due_ms = now_ms;
            record.created = (now_ms / 1000) as i64;
            t.queue.insert((now_ms, record.id.as_u128()), (mode.as_u8(), endpoint.as_u128()))?;
            t.endpoint_pending.insert(key, now_ms)?;
            t.save(&record)?;
            Ok(RetryNow::Moved((now_ms, record.id.as_u128()), Box::new(record)))
        })
    }

    /// The newest attempts of an event (in `mode`), at most `limit`, newest first; and
    /// whether there are more.
    pub fn event_attempts(
        &self,
        mode: Mode,
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
                let Some(record) = decode_found::<AttemptRecord>(TABLE, attempts.get(key.value().1)?)? else {
                    continue;
                };
                if record.mode != mode {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(record);
            }
            Ok((out, false))
        })
    }

    /// Stores a test ping once it was sent: its event (readable, but scheduling nothing)
    /// and its finished attempt, in one transaction.
    pub fn record_test_ping(&self, event: &super::events::NewEvent, record: &AttemptRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            super::events::write_event(tx, event)?;
            let mut t = DeliveryTables::open(tx)?;
            t.save(record)?;
            t.tally(record)?;
            t.write_tallies()?;
            t.by_endpoint.insert((record.mode.as_u8(), record.endpoint_id.as_u128(), record.id.as_u128()), ())?;
            t.by_event.insert((record.event_id.as_u128(), record.id.as_u128()), ())?;
            Ok(())
        })
    }
}

/// Table names as used in decode errors.
mod tables_name {
    pub const ENDPOINTS: &str = "webhook_endpoints";
}

/// Records the results of attempts inside `tx` (see [`Store::record_results`]).
pub(crate) fn record_in(
    tx: &WriteTransaction,
    results: &[AttemptResult],
    now_ms: u64,
    policy: HealthPolicy,
    retry_delay: impl Fn(u32) -> Option<Duration>,
) -> Result<Recorded, StoreError> {
    let mut endpoints = tx.open_table(tables::ENDPOINTS)?;
    let mut health = HealthBatch::open(tx)?;
    let mut t = DeliveryTables::open(tx)?;
    let mut recorded = Recorded::default();
    for result in results {
        let record = t.load(result.attempt_id)?;
        let Some(mut record) = record.filter(|r| r.status == AttemptStatus::Pending) else {
            // Cancelled meanwhile (its endpoint was deleted): only the entry goes.
            t.queue.remove(result.queue_key)?;
            continue;
        };
        t.unqueue(&record)?;
        record.response_status = result.response_status;
        record.response_body = result.response_body.clone();
        record.error = result.error.clone();
        record.duration_ms = Some(result.duration_ms);
        record.created = result.attempted_at;
        record.request_headers = result.request_headers.clone();
        let endpoint_key = (record.mode.as_u8(), record.endpoint_id.as_u128());
        if let Some(reason) = health.observe(endpoint_key.1, result, policy)? {
            disable_endpoint(&mut endpoints, endpoint_key, &reason)?;
        }
        let retry = if result.succeeded {
            None
        } else {
            retry_delay(record.attempt).map(|delay| delay.max(result.retry_after.unwrap_or_default()))
        };
        // The endpoint is read only when a retry is to be scheduled for it.
        let endpoint: Option<EndpointRecord> = match retry {
            Some(_) => decode_found(tables_name::ENDPOINTS, endpoints.get(endpoint_key)?)?,
            None => None,
        };
        match (result.succeeded, retry, endpoint) {
            (true, _, _) => {
                record.status = AttemptStatus::Succeeded;
                t.finish_one(record.event_id.as_u128())?;
                recorded.finished += 1;
            }
            (false, Some(delay), Some(endpoint)) => {
                let due = now_ms + delay.as_millis() as u64;
                record.status = AttemptStatus::Retrying;
                record.next_retry_at = Some((due / 1000) as i64);
                let key = t.schedule(&endpoint, record.event_id, &record.event_type, record.attempt + 1, due)?;
                if endpoint.status == EndpointStatus::Enabled {
                    recorded.scheduled.push(key);
                }
            }
            (false, _, _) => {
                record.status = AttemptStatus::Failed;
                t.finish_one(record.event_id.as_u128())?;
                recorded.finished += 1;
            }
        }
        t.tally(&record)?;
        t.save(&record)?;
    }
    t.write_tallies()?;
    health.save()?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_schedule_with_up_to_ten_percent_jitter() {
        let schedule = [Duration::from_secs(300), Duration::from_secs(1800)];
        for _ in 0..100 {
            let d = next_retry_delay(&schedule, 1).unwrap();
            assert!(d >= Duration::from_secs(300) && d <= Duration::from_secs(330), "{d:?}");
        }
        assert!(next_retry_delay(&schedule, 2).unwrap() >= Duration::from_secs(1800));
        assert_eq!(next_retry_delay(&schedule, 3), None, "after the last retry there is none");
        assert_eq!(next_retry_delay(&[], 1), None);
    }
}
