//! Attempts on Postgres: their rows, the reads of an endpoint's or an event's attempts,
//! and recording results. Rows a transaction writes are gathered in [`Writes`] and sent as
//! a few set-based statements (`unnest` of arrays), so a batch of a hundred events costs a
//! handful of round trips, not hundreds.
//!
//! Rows are changed in a fixed order (attempts, queue, events, statistics) and each set
//! sorted by key, so two processes writing overlapping rows wait for each other rather
//! than deadlock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::mode::Mode;
use crate::store::backend::Attempts;
use crate::store::model::pagination::bound_page;
use crate::store::model::{
    AppRecord, AttemptRecord, AttemptResult, AttemptStatus, EndpointRecord, EndpointStatus, FailureRun, ListError,
    Owner, Page, PageRequest, QueueKey, RecordPolicy, Recorded, Scheduled, SentRequest, StoreError,
};
use crate::store::rules::record::{RecordingTx, record_results};
use crate::store::sealing::Sealer;

use super::cached::{Cached, Pipeline};
use super::cluster::QUEUE_CHANNEL;
use super::endpoints::{Lock, disable_in, get_in, lock_endpoints_of};
use super::health::{lock_health, save_health};
use super::pagination::{ListQuery, list};
use super::{DB_NOW_MS, PgStore, id_of, uuid};

/// The status of an attempt as its column holds it.
pub(super) fn status_code(status: AttemptStatus) -> i16 {
    match status {
        AttemptStatus::Pending => 0,
        AttemptStatus::Succeeded => 1,
        AttemptStatus::Retrying => 2,
        AttemptStatus::Failed => 3,
    }
}

pub(super) fn status_of(code: i16) -> Result<AttemptStatus, StoreError> {
    Ok(match code {
        0 => AttemptStatus::Pending,
        1 => AttemptStatus::Succeeded,
        2 => AttemptStatus::Retrying,
        3 => AttemptStatus::Failed,
        _ => return Err(StoreError::BadKey { table: "attempts" }),
    })
}

/// The columns an attempt is read from, in the order [`attempt_of`] reads them.
pub(super) const ATTEMPT_COLUMNS: &str = "id, app, endpoint, event, mode, event_type, attempt, status, \
     response_status, response_body, error, duration_ms, created, next_retry_at, due_ms, request_headers, sent";

/// How many columns [`ATTEMPT_COLUMNS`] names (where a query's next ones start).
pub(super) const ATTEMPT_COLUMN_COUNT: usize = 17;

/// An attempt read with [`ATTEMPT_COLUMNS`] (its response excerpt still sealed).
pub(super) fn attempt_of(row: &Row) -> Result<AttemptRecord, StoreError> {
    let mode = Mode::from_u8(row.get::<_, i16>(4) as u8).ok_or(StoreError::BadKey { table: "attempts" })?;
    Ok(AttemptRecord {
        id: DeliveryId(id_of(row.get(0))),
        app: AppId(id_of(row.get(1))),
        mode,
        endpoint_id: EndpointId(id_of(row.get(2))),
        event_id: EventId(id_of(row.get(3))),
        event_type: row.get(5),
        attempt: row.get::<_, i32>(6) as u32,
        status: status_of(row.get(7))?,
        response_status: row.get::<_, Option<i32>>(8).map(|s| s as u16),
        response_body: row.get(9),
        error: row.get(10),
        duration_ms: row.get::<_, Option<i64>>(11).map(|d| d as u64),
        created: row.get(12),
        next_retry_at: row.get(13),
        due_ms: row.get::<_, i64>(14) as u64,
        request_headers: row.get::<_, Json<Vec<(String, String)>>>(15).0,
        sent: row.get::<_, Option<Json<SentRequest>>>(16).map(|sent| sent.0),
    })
}

/// Loads attempts by id, locked for the transaction, in id order.
pub(super) async fn lock_attempts(
    client: &impl GenericClient,
    ids: &[DeliveryId],
) -> Result<HashMap<DeliveryId, AttemptRecord>, StoreError> {
    let mut keys: Vec<uuid::Uuid> = ids.iter().map(|id| uuid(id.as_u128())).collect();
    keys.sort();
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ANY($1) ORDER BY id FOR UPDATE");
    let rows = client.q(&sql, &[&keys]).await?;
    rows.iter().map(|row| attempt_of(row).map(|a| (a.id, a))).collect()
}

/// A queue row to write: (attempt, app, endpoint, due ms, parked, claimed for this
/// process: born).
type QueueRow = (DeliveryId, AppId, EndpointId, u64, bool, bool);

/// Puts queue rows (back): the statement of [`Writes::flush`], made once. A born attempt is
/// claimed as the scheduler's claims are (`queue.rs`): held for the lease, reserved for this
/// process if it sends to the endpoint or holds its listener. Any other entry is put (back)
/// unclaimed.
static QUEUE_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO queue (attempt, app, endpoint, due_ms, parked, locked_until_ms, reserved_for)
         SELECT r.attempt, r.app, r.endpoint, r.due_ms, r.parked,
             CASE WHEN r.claimed THEN {DB_NOW_MS} + $7 END,
             CASE WHEN r.claimed THEN coalesce(
                 (SELECT s.sender FROM endpoint_senders s
                  WHERE s.endpoint = r.endpoint AND s.sender = $8 AND s.until_ms >= {DB_NOW_MS}),
                 (SELECT l.holder FROM listeners l
                  WHERE l.endpoint = r.endpoint AND l.holder = $8 AND l.held_until_ms >= {DB_NOW_MS})) END
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::boolean[], $6::boolean[])
             AS r(attempt, app, endpoint, due_ms, parked, claimed)
         ON CONFLICT (attempt) DO UPDATE
         SET due_ms = excluded.due_ms, parked = excluded.parked,
             locked_until_ms = excluded.locked_until_ms, reserved_for = excluded.reserved_for"
    )
});

/// What one transaction writes, gathered to be sent in a few statements by
/// [`Writes::flush`].
#[derive(Default)]
pub(super) struct Writes {
    /// The writing store's name in wake-ups (see `cluster`), so it skips its own, and in
    /// the claims on born attempts.
    sender: String,
    /// Set where first attempts are born ([`Writes::bear`]): how long their claim lasts (ms).
    born_lease_ms: Option<i64>,
    /// Statements that go before the rest (the events published).
    first: Pipeline,
    /// Attempts to insert or overwrite, by id (the last version wins).
    attempts: BTreeMap<DeliveryId, AttemptRecord>,
    /// Queue rows to insert or overwrite (a reschedule, an unpark, a park).
    queue: BTreeMap<DeliveryId, QueueRow>,
    /// Queue rows to delete.
    unqueue: BTreeSet<DeliveryId>,
    /// Changes to events' counts of unfinished deliveries.
    pending: BTreeMap<(AppId, EventId), i32>,
    /// Events whose payload must stay until at least then (Unix ms).
    holds: BTreeMap<(AppId, EventId), u64>,
    /// Deliveries skipped for a disabled endpoint, replayable until then (Unix ms).
    skipped: BTreeMap<(AppId, EventId, EndpointId), u64>,
    /// Attempt outcomes per (app, minute, endpoint, outcome).
    tallies: BTreeMap<(AppId, i64, EndpointId, i16), i64>,
    /// Events whose `failed` flag may have changed.
    outcomes: BTreeMap<(AppId, EventId), bool>,
    /// Deliveries whose attempt (event, endpoint, number) was retried: `retrying` becomes
    /// `failed`.
    retried: BTreeSet<(EventId, EndpointId, u32)>,
}

impl Writes {
    /// Nothing yet, for the store named `sender` in wake-ups.
    pub(super) fn new(sender: &str) -> Writes {
        Writes { sender: sender.to_string(), ..Writes::default() }
    }

    /// The same, for a transaction whose first attempts go to this process's scheduler
    /// born, each claimed for `lease` as it is inserted (the engine's writer's).
    pub(super) fn bearing(sender: &str, lease: std::time::Duration) -> Writes {
        Writes { born_lease_ms: Some(lease.as_millis() as i64), ..Writes::new(sender) }
    }

    /// Where statements go that must run before the rest of the writes (inserting the
    /// events the rest refer to).
    pub(super) fn first(&mut self) -> &mut Pipeline {
        &mut self.first
    }

    /// Claims `attempt`, just queued, for this process, if this transaction bears its first
    /// attempts (see [`Writes::bearing`]); whether it does.
    pub(super) fn bear(&mut self, attempt: DeliveryId) -> bool {
        let Some(row) = self.queue.get_mut(&attempt).filter(|_| self.born_lease_ms.is_some()) else { return false };
        row.5 = true;
        true
    }

    /// Schedules attempt `number` of `event_id` to `endpoint` at `due_ms`: queued if the
    /// endpoint is enabled (its key goes into `scheduled`), parked if not.
    pub(super) fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        event_id: EventId,
        event_type: &str,
        number: u32,
        due_ms: u64,
        scheduled: &mut Scheduled,
    ) -> AttemptRecord {
        let record = AttemptRecord::pending(endpoint, event_id, event_type, number, due_ms);
        let parked = endpoint.status == EndpointStatus::Disabled;
        self.queue.insert(record.id, (record.id, endpoint.app, endpoint.id, due_ms, parked, false));
        if !parked {
            scheduled.push(QueueKey::new(due_ms, record.id));
        }
        self.attempts.insert(record.id, record.clone());
        record
    }

    /// Saves a changed attempt.
    pub(super) fn save(&mut self, record: AttemptRecord) {
        self.attempts.insert(record.id, record);
    }

    /// Puts an attempt (back) on the queue at `due_ms`, or parks it.
    pub(super) fn enqueue(&mut self, record: &AttemptRecord, due_ms: u64, parked: bool) {
        self.unqueue.remove(&record.id);
        self.queue.insert(record.id, (record.id, record.app, record.endpoint_id, due_ms, parked, false));
    }

    /// Takes an attempt off the queue for good.
    pub(super) fn unqueue(&mut self, attempt: DeliveryId) {
        self.queue.remove(&attempt);
        self.unqueue.insert(attempt);
    }

    /// Adds `n` to an event's count of unfinished deliveries (negative: finished).
    pub(super) fn add_pending(&mut self, app: AppId, event: EventId, n: i32) {
        if n != 0 {
            *self.pending.entry((app, event)).or_default() += n;
        }
    }

    /// Keeps an event's payload until at least `until_ms`.
    /// Records a delivery of `event` skipped for disabled `endpoint`, replayable (its
    /// payload held) until `until_ms`.
    pub(super) fn skip(&mut self, endpoint: &EndpointRecord, event: EventId, until_ms: u64) {
        self.skipped.insert((endpoint.app, event, endpoint.id), until_ms);
        self.hold_payload(endpoint.app, event, until_ms);
    }

    fn hold_payload(&mut self, app: AppId, event: EventId, until_ms: u64) {
        let hold = self.holds.entry((app, event)).or_default();
        *hold = (*hold).max(until_ms);
    }

    /// Counts a made attempt towards the per-minute statistics, and notes that its
    /// event's delivered-everywhere flag may change.
    pub(super) fn tally(&mut self, record: &AttemptRecord) {
        let outcome = match record.status {
            AttemptStatus::Succeeded => 0,
            AttemptStatus::Retrying | AttemptStatus::Failed => 1,
            AttemptStatus::Pending => return,
        };
        let minute = record.created.max(0) / 60;
        *self.tallies.entry((record.app, minute, record.endpoint_id, outcome)).or_default() += 1;
    }

    /// Counts an event `endpoint`'s content filter refused at `now_ms` (outcome 2).
    pub(super) fn tally_filtered(&mut self, endpoint: &EndpointRecord, now_ms: u64) {
        let minute = (now_ms / 60_000) as i64;
        *self.tallies.entry((endpoint.app, minute, endpoint.id, 2)).or_default() += 1;
    }

    /// Notes that an attempt's outcome may change whether its event failed somewhere.
    pub(super) fn note_outcome(&mut self, record: &AttemptRecord) {
        if matches!(record.status, AttemptStatus::Failed | AttemptStatus::Succeeded) {
            *self.outcomes.entry((record.app, record.event_id)).or_default() |= record.status == AttemptStatus::Failed;
        }
    }

    /// Sends everything gathered, in the fixed order, in one round trip ([`Pipeline`]).
    pub(super) async fn flush(mut self, client: &impl GenericClient) -> Result<(), StoreError> {
        let mut pipeline = std::mem::take(&mut self.first);
        if !self.attempts.is_empty() {
            push_attempts(&mut pipeline, self.attempts.values());
        }
        if !self.retried.is_empty() {
            let events: Vec<uuid::Uuid> = self.retried.iter().map(|(e, _, _)| uuid(e.as_u128())).collect();
            let endpoints: Vec<uuid::Uuid> = self.retried.iter().map(|(_, e, _)| uuid(e.as_u128())).collect();
            let numbers: Vec<i32> = self.retried.iter().map(|(_, _, n)| *n as i32).collect();
            // Only where one attempt matches (see `RecordingTx::retried`).
            pipeline.push(
                "UPDATE attempts a SET status = $4
                     FROM unnest($1::uuid[], $2::uuid[], $3::integer[]) AS r(event, endpoint, attempt)
                     WHERE a.event = r.event AND a.endpoint = r.endpoint AND a.attempt = r.attempt AND a.status = $5
                       AND (SELECT count(*) FROM attempts b WHERE b.event = r.event AND b.endpoint = r.endpoint
                            AND b.attempt = r.attempt AND b.status = $5) = 1",
                vec![
                    Box::new(events),
                    Box::new(endpoints),
                    Box::new(numbers),
                    Box::new(status_code(AttemptStatus::Failed)),
                    Box::new(status_code(AttemptStatus::Retrying)),
                ],
            );
        }
        if !self.unqueue.is_empty() {
            let ids: Vec<uuid::Uuid> = self.unqueue.iter().map(|id| uuid(id.as_u128())).collect();
            pipeline.push("DELETE FROM queue WHERE attempt = ANY($1)", vec![Box::new(ids)]);
        }
        if self.queue.values().any(|row| !row.4 && !row.5) {
            // Other processes hear of it at commit (not of born attempts: this one holds them).
            pipeline.push("SELECT pg_notify($1, $2)", vec![Box::new(QUEUE_CHANNEL), Box::new(self.sender.clone())]);
        }
        if !self.queue.is_empty() {
            let mut attempts = Vec::new();
            let mut apps = Vec::new();
            let mut endpoints = Vec::new();
            let mut dues = Vec::new();
            let mut parked = Vec::new();
            let mut claimed = Vec::new();
            for (attempt, app, endpoint, due, park, born) in self.queue.values() {
                attempts.push(uuid(attempt.as_u128()));
                apps.push(uuid(app.as_u128()));
                endpoints.push(uuid(endpoint.as_u128()));
                dues.push(*due as i64);
                parked.push(*park);
                claimed.push(*born);
            }
            let lease = self.born_lease_ms.unwrap_or(0);
            pipeline.push(
                QUEUE_INSERT.as_str(),
                vec![
                    Box::new(attempts),
                    Box::new(apps),
                    Box::new(endpoints),
                    Box::new(dues),
                    Box::new(parked),
                    Box::new(claimed),
                    Box::new(lease),
                    Box::new(self.sender.clone()),
                ],
            );
        }
        if !self.pending.is_empty() {
            let (keys, deltas): (Vec<_>, Vec<i32>) = self.pending.into_iter().unzip();
            let (apps, events) = id_columns(&keys);
            pipeline.push(
                "UPDATE events e SET pending = GREATEST(e.pending + d.delta, 0)
                     FROM unnest($1::uuid[], $2::uuid[], $3::integer[]) AS d(app, id, delta)
                     WHERE e.app = d.app AND e.id = d.id",
                vec![Box::new(apps), Box::new(events), Box::new(deltas)],
            );
        }
        if !self.skipped.is_empty() {
            let (mut apps, mut events, mut endpoints, mut untils) = (vec![], vec![], vec![], vec![]);
            for ((app, event, endpoint), until) in self.skipped {
                apps.push(uuid(app.as_u128()));
                events.push(uuid(event.as_u128()));
                endpoints.push(uuid(endpoint.as_u128()));
                untils.push(until as i64);
            }
            pipeline.push(
                "INSERT INTO skipped_deliveries (app, event, endpoint, until_ms)
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[])
                     ON CONFLICT (event, endpoint) DO UPDATE SET until_ms = EXCLUDED.until_ms",
                vec![Box::new(apps), Box::new(events), Box::new(endpoints), Box::new(untils)],
            );
        }
        if !self.holds.is_empty() {
            let (keys, untils): (Vec<_>, Vec<u64>) = self.holds.into_iter().unzip();
            let (apps, events) = id_columns(&keys);
            let untils: Vec<i64> = untils.into_iter().map(|u| u as i64).collect();
            pipeline.push(
                "UPDATE events e SET hold_until_ms = GREATEST(COALESCE(e.hold_until_ms, 0), h.until_ms)
                     FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS h(app, id, until_ms)
                     WHERE e.app = h.app AND e.id = h.id",
                vec![Box::new(apps), Box::new(events), Box::new(untils)],
            );
        }
        if !self.tallies.is_empty() {
            let mut apps = Vec::new();
            let mut minutes = Vec::new();
            let mut endpoints = Vec::new();
            let mut outcomes = Vec::new();
            let mut counts = Vec::new();
            for ((app, minute, endpoint, outcome), n) in self.tallies {
                apps.push(uuid(app.as_u128()));
                minutes.push(minute);
                endpoints.push(uuid(endpoint.as_u128()));
                outcomes.push(outcome);
                counts.push(n);
            }
            pipeline.push(
                "INSERT INTO delivery_stats (app, minute, endpoint, outcome, count)
                     SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::smallint[], $5::bigint[])
                     ON CONFLICT (app, minute, endpoint, outcome)
                     DO UPDATE SET count = delivery_stats.count + excluded.count",
                vec![Box::new(apps), Box::new(minutes), Box::new(endpoints), Box::new(outcomes), Box::new(counts)],
            );
        }
        if !self.outcomes.is_empty() {
            let (keys, failures): (Vec<_>, Vec<bool>) = self.outcomes.into_iter().unzip();
            let (apps, events) = id_columns(&keys);
            // An event failed when the latest attempt to some endpoint failed for good. Only
            // a failure makes it failed, and only an event that is may stop being: the rest
            // (most successes) are not looked at.
            // An event's attempts are found by the event alone (its id is unique, and every
            // attempt has its event's application), so the only index that fits is
            // `attempts_by_event`, whatever a plan made on small tables would guess.
            pipeline.push(
                "UPDATE events e SET failed = f.failed
                     FROM (
                         SELECT ev.app, ev.id, coalesce(bool_or(l.status = 3), false) AS failed
                         FROM unnest($1::uuid[], $2::uuid[], $3::boolean[]) AS ev(app, id, failure)
                         JOIN events cur ON cur.app = ev.app AND cur.id = ev.id AND (ev.failure OR cur.failed)
                         LEFT JOIN LATERAL (
                             SELECT DISTINCT ON (a.endpoint) a.status FROM attempts a
                             WHERE a.event = ev.id
                             ORDER BY a.endpoint, a.id DESC
                         ) l ON true
                         GROUP BY ev.app, ev.id
                     ) f
                     WHERE e.app = f.app AND e.id = f.id AND e.failed <> f.failed",
                vec![Box::new(apps), Box::new(events), Box::new(failures)],
            );
        }
        pipeline.run(client).await?;
        Ok(())
    }
}

/// `(app, id)` keys as two uuid columns.
fn id_columns(keys: &[(AppId, EventId)]) -> (Vec<uuid::Uuid>, Vec<uuid::Uuid>) {
    keys.iter().map(|(app, id)| (uuid(app.as_u128()), uuid(id.as_u128()))).unzip()
}

/// Inserts or overwrites attempts, in one statement of `pipeline`.
fn push_attempts<'a>(pipeline: &mut Pipeline, records: impl Iterator<Item = &'a AttemptRecord>) {
    let mut c = AttemptColumns::default();
    for r in records {
        c.id.push(uuid(r.id.as_u128()));
        c.app.push(uuid(r.app.as_u128()));
        c.endpoint.push(uuid(r.endpoint_id.as_u128()));
        c.event.push(uuid(r.event_id.as_u128()));
        c.mode.push(i16::from(r.mode.as_u8()));
        c.event_type.push(r.event_type.clone());
        c.attempt.push(r.attempt as i32);
        c.status.push(status_code(r.status));
        c.response_status.push(r.response_status.map(i32::from));
        c.response_body.push(r.response_body.clone());
        c.error.push(r.error.clone());
        c.duration_ms.push(r.duration_ms.map(|d| d as i64));
        c.created.push(r.created);
        c.next_retry_at.push(r.next_retry_at);
        c.due_ms.push(r.due_ms as i64);
        c.headers.push(serde_json::to_value(&r.request_headers).unwrap_or_default());
        c.sent.push(r.sent.as_ref().map(|sent| serde_json::to_value(sent).unwrap_or_default()));
    }
    pipeline.push(
        "INSERT INTO attempts (id, app, endpoint, event, mode, event_type, attempt, status, response_status,
                 response_body, error, duration_ms, created, next_retry_at, due_ms, request_headers, sent)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::smallint[], $6::text[],
                 $7::integer[], $8::smallint[], $9::integer[], $10::text[], $11::text[], $12::bigint[],
                 $13::bigint[], $14::bigint[], $15::bigint[], $16::jsonb[], $17::jsonb[])
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, response_status = excluded.response_status,
                 response_body = excluded.response_body, error = excluded.error, duration_ms = excluded.duration_ms,
                 created = excluded.created, next_retry_at = excluded.next_retry_at, due_ms = excluded.due_ms,
                 request_headers = excluded.request_headers, sent = excluded.sent",
        vec![
            Box::new(c.id),
            Box::new(c.app),
            Box::new(c.endpoint),
            Box::new(c.event),
            Box::new(c.mode),
            Box::new(c.event_type),
            Box::new(c.attempt),
            Box::new(c.status),
            Box::new(c.response_status),
            Box::new(c.response_body),
            Box::new(c.error),
            Box::new(c.duration_ms),
            Box::new(c.created),
            Box::new(c.next_retry_at),
            Box::new(c.due_ms),
            Box::new(c.headers),
            Box::new(c.sent),
        ],
    );
}

/// Attempts as columns, for [`push_attempts`].
#[derive(Default)]
struct AttemptColumns {
    id: Vec<uuid::Uuid>,
    app: Vec<uuid::Uuid>,
    endpoint: Vec<uuid::Uuid>,
    event: Vec<uuid::Uuid>,
    mode: Vec<i16>,
    event_type: Vec<String>,
    attempt: Vec<i32>,
    status: Vec<i16>,
    response_status: Vec<Option<i32>>,
    response_body: Vec<Option<String>>,
    error: Vec<Option<String>>,
    duration_ms: Vec<Option<i64>>,
    created: Vec<i64>,
    next_retry_at: Vec<Option<i64>>,
    due_ms: Vec<i64>,
    headers: Vec<serde_json::Value>,
    sent: Vec<Option<serde_json::Value>>,
}

/// Records the results of attempts inside the transaction `client` is in, by the rule in
/// [`rules::record`](crate::store::rules::record).
pub(super) async fn record_in(
    client: &impl GenericClient,
    sealer: &Sealer,
    results: &[AttemptResult],
    now_ms: u64,
    policy: &impl RecordPolicy,
    writes: &mut Writes,
) -> Result<Recorded, StoreError> {
    let mut recording =
        Recording { client, writes, endpoints: HashMap::new(), attempts: HashMap::new(), health: HashMap::new() };
    record_results(&mut recording, sealer, results, now_ms, policy).await
}

/// What recording a batch of results reads, locked at the start, and the writes it gathers.
struct Recording<'a, C> {
    client: &'a C,
    writes: &'a mut Writes,
    /// The endpoints of the failed attempts (as this transaction changed them).
    endpoints: HashMap<EndpointId, EndpointRecord>,
    attempts: HashMap<DeliveryId, AttemptRecord>,
    /// The stored runs of failures of the batch's endpoints.
    health: HashMap<EndpointId, FailureRun>,
}

impl<C: GenericClient> RecordingTx for Recording<'_, C> {
    /// Locks endpoints before attempts (see `lock_endpoints_of`); only failures need
    /// theirs (to schedule a retry, to hold the payload, to disable it).
    async fn prepare(&mut self, results: &[AttemptResult]) -> Result<(), StoreError> {
        let failed: Vec<uuid::Uuid> =
            results.iter().filter(|r| !r.succeeded).map(|r| uuid(r.attempt().as_u128())).collect();
        if !failed.is_empty() {
            self.endpoints = lock_endpoints_of(self.client, &failed).await?;
        }
        let ids: Vec<DeliveryId> = results.iter().map(AttemptResult::attempt).collect();
        self.attempts = lock_attempts(self.client, &ids).await?;
        self.health = lock_health(self.client, results.iter().map(|r| r.endpoint)).await?;
        Ok(())
    }

    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        Ok(self.attempts.remove(&id))
    }

    fn drop_entry(&mut self, key: QueueKey) -> Result<(), StoreError> {
        self.writes.unqueue(key.attempt());
        Ok(())
    }

    fn unqueue(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.writes.unqueue(record.id);
        Ok(())
    }

    async fn stored_health(&mut self, endpoint: EndpointId) -> Result<Option<FailureRun>, StoreError> {
        Ok(self.health.get(&endpoint).copied())
    }

    async fn save_health(&mut self, changed: Vec<(EndpointId, Option<FailureRun>)>) -> Result<(), StoreError> {
        save_health(self.client, changed).await
    }

    /// A failed attempt's endpoint was locked by `prepare`; a succeeded one's is read only
    /// for what the platform is told of (a recovery), unlocked.
    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        if let Some(endpoint) = self.endpoints.get(&id) {
            return Ok(Some(endpoint.clone()));
        }
        get_in(self.client, app, id, Lock::Read).await
    }

    async fn disable(&mut self, app: AppId, id: EndpointId, reason: &str, at: i64) -> Result<bool, StoreError> {
        let Some(disabled) = disable_in(self.client, app, id, reason, at).await? else { return Ok(false) };
        self.endpoints.insert(id, disabled);
        Ok(true)
    }

    async fn app(&mut self, owner: Owner) -> Result<Option<AppRecord>, StoreError> {
        super::apps::get_in(self.client, owner).await
    }

    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        after: &AttemptRecord,
        number: u32,
        due_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<(), StoreError> {
        self.writes.schedule(endpoint, after.event_id, &after.event_type, number, due_ms, scheduled);
        Ok(())
    }

    fn finish_one(&mut self, record: &AttemptRecord) -> Result<(), StoreError> {
        self.writes.add_pending(record.app, record.event_id, -1);
        Ok(())
    }

    fn hold_payload(&mut self, record: &AttemptRecord, until_ms: u64) -> Result<(), StoreError> {
        self.writes.hold_payload(record.app, record.event_id, until_ms);
        Ok(())
    }

    fn store_outcome(&mut self, record: AttemptRecord) -> Result<(), StoreError> {
        self.writes.tally(&record);
        self.writes.note_outcome(&record);
        self.writes.save(record);
        Ok(())
    }

    async fn retried(&mut self, made: &AttemptRecord) -> Result<(), StoreError> {
        self.writes.retried.insert((made.event_id, made.endpoint_id, made.attempt - 1));
        Ok(())
    }
}

/// The latest attempt of event `e` to each endpoint it went to, as SQL (`status`).
pub(super) const LATEST_PER_ENDPOINT: &str = "(SELECT DISTINCT ON (a.endpoint) a.status FROM attempts a
     WHERE a.event = e.id AND a.app = e.app ORDER BY a.endpoint, a.id DESC)";

/// The latest attempt of an event to each endpoint it went to: its status and when it
/// was made (Unix seconds).
pub(super) async fn latest_per_endpoint(
    client: &impl GenericClient,
    app: AppId,
    event: EventId,
) -> Result<HashMap<EndpointId, (AttemptStatus, i64)>, StoreError> {
    let rows = client
        .q(
            "SELECT DISTINCT ON (endpoint) endpoint, status, created FROM attempts
             WHERE event = $1 AND app = $2 ORDER BY endpoint, id DESC",
            &[&uuid(event.as_u128()), &uuid(app.as_u128())],
        )
        .await?;
    let mut latest = HashMap::with_capacity(rows.len());
    for row in rows {
        latest.insert(EndpointId(id_of(row.get(0))), (status_of(row.get(1))?, row.get(2)));
    }
    Ok(latest)
}

impl Attempts for PgStore {
    async fn list_attempts(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, ListError> {
        self.attempts_page(owner, endpoint, request, status, true).await
    }

    async fn endpoint_attempts_page(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
    ) -> Result<Page<AttemptRecord>, StoreError> {
        bound_page(self.attempts_page(owner, endpoint, request, status, false).await)
    }

    async fn app_attempt(&self, owner: Owner, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1 AND app = $2");
        let row = client.q_opt(&sql, &[&uuid(id.as_u128()), &uuid(owner.app.as_u128())]).await?;
        row.map(|row| attempt_of(&row)?.opened(&self.sealer)).transpose()
    }

    async fn attempt(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        id: DeliveryId,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1 AND app = $2 AND endpoint = $3");
        let row =
            client.q_opt(&sql, &[&uuid(id.as_u128()), &uuid(owner.app.as_u128()), &uuid(endpoint.as_u128())]).await?;
        row.map(|row| attempt_of(&row)?.opened(&self.sealer)).transpose()
    }

    async fn attempts_of_type(
        &self,
        owner: Owner,
        event_type: String,
        max_events: usize,
    ) -> Result<Option<Vec<AttemptRecord>>, StoreError> {
        let client = self.client().await?;
        let app = uuid(owner.app.as_u128());
        // Counted in the database, to one beyond the bound: a common type costs an index
        // scan, not its ids sent over.
        let max = i64::try_from(max_events).unwrap_or(i64::MAX - 1);
        let count = "SELECT count(*) FROM (SELECT 1 FROM events WHERE app = $1 AND event_type = $2 LIMIT $3) AS typed";
        let count: i64 = client.q_one(count, &[&app, &event_type, &(max + 1)]).await?.get(0);
        if count > max {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts \
             WHERE app = $1 AND event IN (SELECT id FROM events WHERE app = $1 AND event_type = $2)"
        );
        let rows = client.q(&sql, &[&app, &event_type]).await?;
        rows.iter().map(|row| attempt_of(row)?.opened(&self.sealer)).collect::<Result<_, _>>().map(Some)
    }

    async fn event_attempts(
        &self,
        owner: Owner,
        event: EventId,
        limit: usize,
    ) -> Result<(Vec<AttemptRecord>, bool), StoreError> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE event = $1 AND app = $2 ORDER BY id DESC LIMIT $3");
        let rows = client.q(&sql, &[&uuid(event.as_u128()), &uuid(owner.app.as_u128()), &(limit as i64 + 1)]).await?;
        let more = rows.len() > limit;
        let out = rows.iter().take(limit).map(|row| attempt_of(row)?.opened(&self.sealer)).collect::<Result<_, _>>()?;
        Ok((out, more))
    }

    #[cfg(test)]
    async fn put_raw_attempt_for_test(&self, id: DeliveryId, bytes: Option<Vec<u8>>) -> () {
        let id = uuid(id.as_u128());
        async {
            let client = self.client().await?;
            match bytes {
                Some(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    client.exec("UPDATE attempts SET response_body = $2 WHERE id = $1", &[&id, &text]).await?
                }
                None => client.exec("DELETE FROM attempts WHERE id = $1", &[&id]).await?,
            };
            Ok::<_, StoreError>(())
        }
        .await
        .unwrap();
    }
}

impl PgStore {
    /// A page of an endpoint's attempts, optionally of one status; with `check_cursor`, a
    /// cursor must name one of its attempts (else it is a bound only).
    async fn attempts_page(
        &self,
        owner: Owner,
        endpoint: EndpointId,
        request: PageRequest<DeliveryId>,
        status: Option<AttemptStatus>,
        check_cursor: bool,
    ) -> Result<Page<AttemptRecord>, ListError> {
        let (app, endpoint) = (uuid(owner.app.as_u128()), uuid(endpoint.as_u128()));
        let code = status.map(status_code);
        let mut select = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE app = $1 AND endpoint = $2");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&app, &endpoint];
        if let Some(code) = &code {
            params.push(code);
            select += " AND status = $3";
        }
        let client = self.client().await?;
        // A checked cursor must be an attempt of this endpoint (the page itself is of the
        // application's: `select` says so). One statement text for every endpoint, so
        // the connection's cache of prepared statements stays bounded.
        let exists = check_cursor.then_some("SELECT 1 FROM attempts WHERE endpoint = $1 AND id = $2");
        let query = ListQuery { select: &select, params, id: "id", exists, scope: &endpoint };
        list(&client, query, request, |row| attempt_of(row)?.opened(&self.sealer)).await
    }
}

#[cfg(test)]
#[test]
fn the_column_count_is_the_columns_named() {
    assert_eq!(ATTEMPT_COLUMN_COUNT, ATTEMPT_COLUMNS.split(", ").count());
}
