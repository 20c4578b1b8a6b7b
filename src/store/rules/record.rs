//! Recording the results of attempts: each gets its outcome and leaves the queue; a
//! failure with retries left schedules the next attempt (and is `retrying` until that one
//! is made, then `failed`), one without parks its payload for resending; the endpoint's
//! run of failures is tracked, and an endpoint the policy gives up on is disabled. When to
//! retry and when to disable are the policy's ([`RecordPolicy`]); what follows from its
//! answers is decided here, once, and so are the changes the platform is told of
//! ([`Told`]: a delivery failed for good, a run of failures reaching the policy's
//! threshold, a recovery, an endpoint disabled), each once, as it happens. A delivery the
//! endpoint's transformation cancelled ends `failed` at once, saying so, and is not told
//! of as failed for good.

use std::collections::HashMap;

use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::store::model::{
    AppRecord, AttemptRecord, AttemptResult, AttemptStatus, EndpointRecord, FailureRun, Owner, QueueKey, RecordPolicy,
    Recorded, Scheduled, StoreError, Told,
};
use crate::store::sealing::Sealer;

/// What recording results needs of a backend, inside one write transaction.
pub(crate) trait RecordingTx {
    /// Reads (and, where rows are shared, locks) what recording `results` touches, before
    /// any is recorded. Nothing to do for a backend that reads as it goes.
    async fn prepare(&mut self, results: &[AttemptResult]) -> Result<(), StoreError> {
        let _ = results;
        Ok(())
    }

    /// The attempt, as stored.
    async fn attempt(&mut self, id: DeliveryId) -> Result<Option<AttemptRecord>, StoreError>;

    /// Takes the queue entry of an attempt that is no longer pending (cancelled meanwhile,
    /// or recorded by another process).
    fn drop_entry(&mut self, key: QueueKey) -> Result<(), StoreError>;

    /// Takes a pending attempt off the queue for good.
    fn unqueue(&mut self, record: &AttemptRecord) -> Result<(), StoreError>;

    /// The endpoint's stored run of failures.
    async fn stored_health(&mut self, endpoint: EndpointId) -> Result<Option<FailureRun>, StoreError>;

    /// Writes the runs of failures that changed (`None`: the endpoint is healthy).
    async fn save_health(&mut self, changed: Vec<(EndpointId, Option<FailureRun>)>) -> Result<(), StoreError>;

    /// The endpoint as it is now in this transaction (`None`: deleted).
    async fn endpoint(&mut self, app: AppId, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError>;

    /// Disables the endpoint at `at` (Unix seconds), saying why, unless it already is;
    /// whether it did.
    async fn disable(&mut self, app: AppId, id: EndpointId, reason: &str, at: i64) -> Result<bool, StoreError>;

    /// The application (`None`: none of that id, as an operational endpoint's).
    async fn app(&mut self, owner: Owner) -> Result<Option<AppRecord>, StoreError>;

    /// Schedules attempt `number` of the delivery `after` belongs to, at `due_ms`: queued
    /// if the endpoint is enabled (its key goes into `scheduled`), parked if not.
    fn schedule(
        &mut self,
        endpoint: &EndpointRecord,
        after: &AttemptRecord,
        number: u32,
        due_ms: u64,
        scheduled: &mut Scheduled,
    ) -> Result<(), StoreError>;

    /// Counts one of the event's deliveries as ended.
    fn finish_one(&mut self, record: &AttemptRecord) -> Result<(), StoreError>;

    /// Keeps the event's payload until at least `until_ms`, to resend.
    fn hold_payload(&mut self, record: &AttemptRecord, until_ms: u64) -> Result<(), StoreError>;

    /// Stores a made attempt with its outcome: the record, its per-minute statistics and
    /// its event's failed flag.
    fn store_outcome(&mut self, record: AttemptRecord) -> Result<(), StoreError>;

    /// The attempt before `made` of the same delivery (its event, its endpoint, the number
    /// one less) was `retrying`, waiting for `made`; `made` is made, so nothing waits on
    /// that one any more: it becomes `failed` (its outcome, its statistics and its event's
    /// flags stay as they are: it had failed already). Attempts name no predecessor, so
    /// it is found as the one `retrying` attempt of that event, endpoint and number; when
    /// a resend overlapped the retries there can be two, and then neither is changed
    /// (each stays `retrying`, as before this rule, rather than the wrong one `failed`).
    async fn retried(&mut self, made: &AttemptRecord) -> Result<(), StoreError>;

    /// Writes what was gathered for the whole batch (counters summed over it).
    async fn finish(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Records `results` through `tx`, as `policy` decides.
pub(crate) async fn record_results(
    tx: &mut impl RecordingTx,
    sealer: &Sealer,
    results: &[AttemptResult],
    now_ms: u64,
    policy: &impl RecordPolicy,
) -> Result<Recorded, StoreError> {
    let mut recorded = Recorded::default();
    if results.is_empty() {
        return Ok(recorded);
    }
    tx.prepare(results).await?;
    let mut health = HealthRuns::default();
    let failing_after = policy.failing_after();
    for result in results {
        let Some(mut record) = tx.attempt(result.attempt()).await?.filter(|r| r.status == AttemptStatus::Pending)
        else {
            tx.drop_entry(result.queue_key)?;
            continue;
        };
        tx.unqueue(&record)?;
        if record.attempt > 1 {
            tx.retried(&record).await?;
        }
        record.response_status = result.response_status;
        record.response_body = result.response_body.clone();
        record.error = result.error.clone();
        record.duration_ms = Some(result.duration_ms);
        record.created = (result.attempted_at_ms / 1000) as i64;
        record.request_headers = result.request_headers.clone();
        record.sent = result.sent.clone();
        let mut record = if result.sealed { record } else { record.sealed(sealer) };
        let run_before = health.current(tx, record.endpoint_id).await?;
        let verdict = policy.health(run_before, result);
        health.set(record.endpoint_id, verdict.run);
        let disabled = match &verdict.disable {
            Some(reason) => tx.disable(record.app, record.endpoint_id, reason, record.created).await?,
            None => false,
        };
        recorded.disabled += usize::from(disabled);
        let (before, after) = (run_before.map_or(0, |r| r.failures), verdict.run.map_or(0, |r| r.failures));
        let failing = failing_after.filter(|n| before < *n && *n <= after).map(|_| after);
        let recovered = failing_after.filter(|n| result.succeeded && before >= *n).map(|_| before);
        // Cancelled by the endpoint's transformation: it ends here, as it decided.
        let retry = match result.succeeded || result.cancelled {
            true => None,
            false => policy.retry_delay(record.attempt, result.retry_after),
        };
        // The endpoint is read only for a failure: to schedule the retry, or to know how
        // long its payload stays (`None`: deleted meanwhile).
        let endpoint = match result.succeeded {
            true => None,
            false => tx.endpoint(record.app, record.endpoint_id).await?,
        };
        let exhausted = !result.succeeded && !result.cancelled && retry.is_none() && endpoint.is_some();
        let changes = Changes { disabled, exhausted, failing, recovered };
        // Rare: the endpoint is read again (as disabled, or not read yet for a success).
        let changed = match changes.any() {
            true => tx.endpoint(record.app, record.endpoint_id).await?,
            false => None,
        };
        match (result.succeeded, retry, endpoint) {
            (true, _, _) => {
                record.status = AttemptStatus::Succeeded;
                tx.finish_one(&record)?;
                recorded.finished += 1;
            }
            (false, Some(delay), Some(endpoint)) => {
                let due = now_ms + delay.as_millis() as u64;
                record.status = AttemptStatus::Retrying;
                record.next_retry_at = Some((due / 1000) as i64);
                tx.schedule(&endpoint, &record, record.attempt + 1, due, &mut recorded.scheduled)?;
            }
            (false, _, endpoint) => {
                record.status = AttemptStatus::Failed;
                tx.finish_one(&record)?;
                recorded.finished += 1;
                // A cancelled delivery is kept no longer than any event: its endpoint asked
                // for nothing.
                if let Some(endpoint) = endpoint.filter(|_| !result.cancelled) {
                    let window = policy.undelivered_retention(endpoint.undelivered_retention_hours);
                    tx.hold_payload(&record, result.attempted_at_ms + window.as_millis() as u64)?;
                }
            }
        }
        if let Some(endpoint) = changed
            && let Some(app) = tx.app(Owner { app: record.app, mode: record.mode }).await?
        {
            let told = changes.told(endpoint, &record);
            recorded.told.extend(told.iter().filter_map(|what| policy.tell(what, &app, now_ms)));
        }
        tx.store_outcome(record)?;
    }
    tx.save_health(health.changed()).await?;
    tx.finish().await?;
    Ok(recorded)
}

/// What one result changed that the platform is told of (see [`Told`]).
struct Changes {
    /// Stile disabled the endpoint.
    disabled: bool,
    /// The delivery failed for good.
    exhausted: bool,
    /// The run of failures reached the threshold: its length.
    failing: Option<u32>,
    /// A success ended a failing run: its length.
    recovered: Option<u32>,
}

impl Changes {
    /// Whether there is anything to tell.
    fn any(&self) -> bool {
        self.disabled || self.exhausted || self.failing.is_some() || self.recovered.is_some()
    }

    /// The changes about `endpoint`, made by `attempt` (as recorded), in the order they
    /// happened: a recovery, a run reaching the threshold, a delivery failing for good,
    /// the endpoint disabled.
    fn told(self, endpoint: EndpointRecord, attempt: &AttemptRecord) -> Vec<Told> {
        let mut told = Vec::new();
        if let Some(failures) = self.recovered {
            told.push(Told::Recovered { endpoint: endpoint.clone(), attempt: attempt.clone(), failures });
        }
        if let Some(failures) = self.failing {
            told.push(Told::Failing { endpoint: endpoint.clone(), attempt: attempt.clone(), failures });
        }
        if self.exhausted {
            told.push(Told::Exhausted { endpoint: endpoint.clone(), attempt: attempt.clone() });
        }
        if self.disabled {
            told.push(Told::Disabled { endpoint, attempt: attempt.clone() });
        }
        told
    }
}

/// The runs of failures of the endpoints in one batch of results, read once and written
/// once (a batch is often hundreds of attempts to a few endpoints).
#[derive(Default)]
struct HealthRuns {
    /// Endpoint → (its run as stored, its run after the results seen so far).
    seen: HashMap<EndpointId, (Option<FailureRun>, Option<FailureRun>)>,
}

impl HealthRuns {
    /// The endpoint's run so far in this batch.
    async fn current(
        &mut self,
        tx: &mut impl RecordingTx,
        endpoint: EndpointId,
    ) -> Result<Option<FailureRun>, StoreError> {
        if let Some((_, now)) = self.seen.get(&endpoint) {
            return Ok(*now);
        }
        let stored = tx.stored_health(endpoint).await?;
        self.seen.insert(endpoint, (stored, stored));
        Ok(stored)
    }

    /// Sets the endpoint's run after an attempt ([`HealthRuns::current`] first).
    fn set(&mut self, endpoint: EndpointId, run: Option<FailureRun>) {
        if let Some(slot) = self.seen.get_mut(&endpoint) {
            slot.1 = run;
        }
    }

    /// The runs that differ from what is stored, in endpoint order (rows are locked in a
    /// fixed order), so a healthy endpoint that stayed healthy costs no write.
    fn changed(self) -> Vec<(EndpointId, Option<FailureRun>)> {
        let mut changed: Vec<_> =
            self.seen.into_iter().filter(|(_, (stored, now))| stored != now).map(|(e, (_, now))| (e, now)).collect();
        changed.sort_by_key(|(endpoint, _)| *endpoint);
        changed
    }
}
