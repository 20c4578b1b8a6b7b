//! The writer: the one thread that commits publishes and delivery results.
//!
//! redb has one writer at a time, so a publisher and a recorder committing separately
//! would only take turns, each paying for its own commit and fsync. Here everything that
//! is waiting (publishes from the API, results from the scheduler) goes into one
//! transaction with one fsync, then publishers get their answers and the scheduler hears
//! what was recorded and scheduled. Under load a batch grows by itself (whatever arrived
//! during the last commit goes into the next), so latency stays near one commit.
//!
//! Publishes are never held back. Results alone, at low rates, wait up to
//! [`RECORD_LINGER`] for company, so a few hundred deliveries a second do not each pay
//! for a commit; that delays only when a result shows in the API (the receiver already
//! has the request) and widens by as much what a crash would send again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{RETRY_DELAY, SchedulerMsg};
use super::handoff::{Receiver, Sender};
use crate::clock::unix_now_ms;
use crate::error::ApiError;
use crate::metrics::{Metrics, Outcome};
use crate::store::Store;
use crate::store::deliveries::{AttemptResult, HealthPolicy, Written, next_retry_delay};
use crate::store::events::{NewEvent, Published};

/// The most messages (publishes and results) committed in one transaction.
const MAX_BATCH: usize = 2048;

/// How long results wait for more to share a commit with, when fewer than
/// [`RECORD_SHARE_BATCH`] are waiting and no publish is.
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// A batch with this many results is committed without waiting for more. Small next to
/// the worker pool, since finished but unrecorded attempts hold pool capacity.
const RECORD_SHARE_BATCH: usize = 16;

/// What the writer commits.
pub(crate) enum WriteJob {
    /// An event to store with its deliveries, and where to answer once it is durable.
    Publish(NewEvent, tokio::sync::oneshot::Sender<Result<Published, ApiError>>),
    /// A finished attempt, with its endpoint (the scheduler's key for its slot).
    Result(AttemptResult, u128),
}

/// What the writer needs besides its queues.
pub(crate) struct WriterSettings {
    /// The retry schedule (already scaled).
    pub(crate) schedule: Vec<Duration>,
    /// When endpoints are disabled.
    pub(crate) policy: HealthPolicy,
}

/// One transaction's worth of jobs.
#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    replies: Vec<tokio::sync::oneshot::Sender<Result<Published, ApiError>>>,
    results: Vec<AttemptResult>,
    endpoints: Vec<u128>,
}

impl Batch {
    fn add(&mut self, job: WriteJob) {
        match job {
            WriteJob::Publish(event, reply) => {
                self.events.push(event);
                self.replies.push(reply);
            }
            WriteJob::Result(result, endpoint) => {
                self.results.push(result);
                self.endpoints.push(endpoint);
            }
        }
    }

    fn len(&self) -> usize {
        self.events.len() + self.results.len()
    }
}

/// Runs until every sender of `jobs` is gone, then returns after the last batch. A failed
/// write answers its publishes with the error and is retried for its results, so no
/// result is dropped; when publishes and results fail together they are written apart.
pub(crate) fn run(
    store: Arc<Store>,
    jobs: Receiver<WriteJob>,
    scheduler: Sender<SchedulerMsg>,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
) {
    let mut carried = Batch::default();
    loop {
        let mut batch = std::mem::take(&mut carried);
        if batch.len() == 0 {
            let Some(first) = jobs.recv() else { break };
            batch.add(first);
        }
        gather(&jobs, &mut batch);
        let write = |events: &[NewEvent], results: &[AttemptResult]| {
            let retry_delay = |n| next_retry_delay(&settings.schedule, n);
            store.publish_and_record(events, results, unix_now_ms(), settings.policy, retry_delay)
        };
        let written = match write(&batch.events, &batch.results) {
            Err(err) if !batch.events.is_empty() && !batch.results.is_empty() => {
                // Either half may be what failed: publish alone now, so a result the store
                // cannot take never holds up publishing, and record on the next pass.
                tracing::warn!(error = %err, "a write of publishes and results failed; writing them apart");
                carried.results = std::mem::take(&mut batch.results);
                carried.endpoints = std::mem::take(&mut batch.endpoints);
                write(&batch.events, &[])
            }
            other => other,
        };
        let Written { published, first_attempts: mut scheduled, recorded } = match written {
            Ok(written) => written,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    publishes = batch.events.len(),
                    results = batch.results.len(),
                    "cannot write publishes or delivery results; results are retried"
                );
                let err = ApiError::from(err);
                for reply in batch.replies {
                    let _ = reply.send(Err(err.clone()));
                }
                if !batch.results.is_empty() {
                    // The results alone failed: give the store a moment.
                    std::thread::sleep(RETRY_DELAY);
                    carried.results = batch.results;
                    carried.endpoints = batch.endpoints;
                }
                continue;
            }
        };
        metrics.events.inc_by(published.len() as u64);
        for (reply, result) in batch.replies.into_iter().zip(published) {
            let _ = reply.send(Ok(result));
        }
        // Outcome counters are looked up once per batch, not once per result.
        let succeeded = batch.results.iter().filter(|r| r.succeeded).count() as u64;
        for (outcome, count) in [("succeeded", succeeded), ("failed", batch.results.len() as u64 - succeeded)] {
            if count > 0 {
                metrics.attempts.get_or_create(&Outcome { outcome }).inc_by(count);
            }
        }
        for attempt in &batch.results {
            metrics.attempt_seconds.observe(attempt.duration_ms as f64 / 1000.0);
        }
        metrics.retries_scheduled.inc_by(recorded.scheduled.len() as u64);
        scheduled.extend(recorded.scheduled);
        let done: Vec<(u128, u128)> =
            batch.results.iter().zip(batch.endpoints).map(|(r, endpoint)| (r.attempt_id, endpoint)).collect();
        if !(done.is_empty() && scheduled.is_empty())
            && scheduler.send(SchedulerMsg::Recorded(done, scheduled)).is_err()
        {
            tracing::error!("the scheduler stopped; new deliveries wait for the next start");
        }
    }
}

/// Adds whatever is queued to `batch`; when it holds only a few results, waits up to
/// [`RECORD_LINGER`] for more (or for a publish, which ends the wait).
fn gather(jobs: &Receiver<WriteJob>, batch: &mut Batch) {
    let room = |batch: &Batch| MAX_BATCH.saturating_sub(batch.len());
    for job in jobs.take_queued(room(batch)) {
        batch.add(job);
    }
    let linger_until = Instant::now() + RECORD_LINGER;
    while batch.events.is_empty() && batch.results.len() < RECORD_SHARE_BATCH {
        let Ok(job) = jobs.recv_timeout(linger_until.saturating_duration_since(Instant::now())) else {
            return;
        };
        batch.add(job);
        for job in jobs.take_queued(room(batch)) {
            batch.add(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::handoff::handoff;
    use crate::mode::Mode;
    use crate::store::deliveries::QueueKey;
    use crate::store::endpoints::EndpointRecord;

    /// A store with one endpoint and `n` published events; the queue keys of their attempts.
    fn store_with_attempts(n: usize) -> (tempfile::TempDir, Arc<Store>, u128, Vec<QueueKey>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let endpoint = EndpointRecord::for_test(Mode::Test, "http://127.0.0.1:9/", "*");
        store.insert_endpoint(&endpoint).unwrap();
        let events: Vec<NewEvent> =
            (0..n).map(|_| NewEvent::new(Mode::Test, "a.b", &serde_json::json!({}), 0).unwrap()).collect();
        let (_, keys) = store.publish_events(&events, unix_now_ms()).unwrap();
        (dir, store, endpoint.id.as_u128(), keys)
    }

    fn succeeded(key: QueueKey) -> AttemptResult {
        AttemptResult {
            attempt_id: key.1,
            queue_key: key,
            succeeded: true,
            response_status: Some(200),
            response_body: None,
            error: None,
            duration_ms: 1,
            attempted_at: 0,
            request_headers: vec![],
            retry_after: None,
        }
    }

    /// Starts a writer on `store` with `queued` already waiting for it.
    fn start(
        store: &Arc<Store>,
        queued: Vec<WriteJob>,
    ) -> (Sender<WriteJob>, Receiver<SchedulerMsg>, std::thread::JoinHandle<()>) {
        let (jobs, jobs_rx) = handoff();
        for job in queued {
            assert!(jobs.send(job).is_ok());
        }
        let (scheduler, inbox) = handoff();
        let settings =
            WriterSettings { schedule: vec![], policy: HealthPolicy { disable_after: Duration::from_secs(3600) } };
        let store = Arc::clone(store);
        let thread = std::thread::spawn(move || run(store, jobs_rx, scheduler, settings, Arc::default()));
        (jobs, inbox, thread)
    }

    /// The next message the scheduler gets, as (attempts recorded, queue keys scheduled).
    fn recorded(inbox: &Receiver<SchedulerMsg>) -> (Vec<u128>, Vec<QueueKey>) {
        match inbox.recv_timeout(Duration::from_secs(30)) {
            Ok(SchedulerMsg::Recorded(done, scheduled)) => (done.into_iter().map(|(id, _)| id).collect(), scheduled),
            Ok(_) => panic!("the writer sends only Recorded"),
            Err(err) => panic!("no word from the writer: {err:?}"),
        }
    }

    #[test]
    fn results_waiting_together_share_one_commit() {
        let (_dir, store, endpoint, keys) = store_with_attempts(3);
        let results = keys.iter().map(|key| WriteJob::Result(succeeded(*key), endpoint)).collect();
        let (jobs, inbox, thread) = start(&store, results);
        let (done, scheduled) = recorded(&inbox);
        assert_eq!(done, keys.iter().map(|k| k.1).collect::<Vec<_>>(), "all three in one transaction");
        assert!(scheduled.is_empty());
        assert!(store.due_entries(None, u64::MAX, 10).unwrap().is_empty(), "they left the queue");
        drop(jobs);
        thread.join().unwrap();
        assert!(inbox.recv_timeout(Duration::ZERO).is_err(), "nothing more was written");
    }

    #[test]
    fn a_publish_shares_its_commit_with_waiting_results() {
        let (_dir, store, endpoint, keys) = store_with_attempts(1);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let event = NewEvent::new(Mode::Test, "a.b", &serde_json::json!({}), 0).unwrap();
        let queued = vec![WriteJob::Result(succeeded(keys[0]), endpoint), WriteJob::Publish(event, reply)];
        let (jobs, inbox, thread) = start(&store, queued);
        let published = answer.blocking_recv().unwrap().unwrap();
        assert_eq!(published.deliveries, 1);
        let (done, scheduled) = recorded(&inbox);
        assert_eq!(done, vec![keys[0].1], "the result went with the publish");
        assert_eq!(scheduled.len(), 1, "the published event's first attempt");
        assert_eq!(store.due_entries(None, u64::MAX, 10).unwrap().len(), 1);
        drop(jobs);
        thread.join().unwrap();
    }

    #[test]
    fn a_result_the_store_cannot_take_never_holds_up_publishing() {
        let (_dir, store, endpoint, keys) = store_with_attempts(1);
        let set_attempt = |bytes: Option<&[u8]>| {
            store
                .write(|tx| {
                    let mut attempts = tx.open_table(crate::store::tables::ATTEMPTS)?;
                    match bytes {
                        Some(bytes) => attempts.insert(keys[0].1, bytes)?,
                        None => attempts.remove(keys[0].1)?,
                    };
                    Ok(())
                })
                .unwrap()
        };
        set_attempt(Some(b"not json"));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let event = NewEvent::new(Mode::Test, "a.b", &serde_json::json!({}), 0).unwrap();
        let queued = vec![WriteJob::Result(succeeded(keys[0]), endpoint), WriteJob::Publish(event, reply)];
        let (jobs, inbox, thread) = start(&store, queued);
        assert_eq!(answer.blocking_recv().unwrap().unwrap().deliveries, 1, "the publish went through alone");
        let (done, scheduled) = recorded(&inbox);
        assert!(done.is_empty(), "the unreadable attempt is not recorded");
        assert_eq!(scheduled.len(), 1);
        // Once the attempt can be dealt with (here: it is gone), the retried result goes.
        set_attempt(None);
        let (done, _) = recorded(&inbox);
        assert_eq!(done, vec![keys[0].1]);
        drop(jobs);
        thread.join().unwrap();
    }
}
