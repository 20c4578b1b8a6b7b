//! The writer: the one task that commits publishes and delivery results.
//!
//! redb has one writer at a time, so a publisher and a recorder committing separately
//! would only take turns, each paying for its own commit and fsync. Here everything that
//! is waiting (publishes from the API, results from the scheduler) goes into one
//! transaction with one fsync, then publishers get their answers and the scheduler hears
//! what was recorded and scheduled. Under load a batch grows by itself (whatever arrived
//! during the last commit goes into the next), so latency stays near one commit.
//!
//! Results alone, at low rates, wait up to [`RECORD_LINGER`] for company, so a few
//! hundred deliveries a second do not each pay for a commit; that delays only when a
//! result shows in the API (the receiver already has the request) and widens by as much
//! what a crash would send again.
//!
//! Publishes wait only when they come fast (group commit, as Postgres' `commit_delay`):
//! paced at 1,000 a second they would otherwise each pay for a commit of their own, and
//! a commit writes whole pages of a dozen tables (about 100 KiB) whatever it holds.
//! While [`PublishPace`] expects another publish within `[store] commit_delay`, a batch
//! with fewer than [`PUBLISH_GROUP`] publishes waits up to that long for more. Slower
//! traffic never waits; in a burst the group fills in a fraction of the delay, and the
//! fewer, larger commits raised W1's throughput (8,035 vs 7,083 deliveries/s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::EngineError;
use super::messages::{Inbox, RETRY_DELAY, SchedulerMsg, To, WriteJob};
use super::policy::Policy;
use crate::clock::Clock;
use crate::ids::{DeliveryId, EndpointId};
use crate::metrics::{Metrics, Outcome};
use crate::store::QueueWrites;
use crate::store::model::{AttemptResult, NewEvent, Published, Written};

/// The most messages (publishes and results) committed in one transaction.
const MAX_BATCH: usize = 2048;

/// How long results wait for more to share a commit with, when fewer than
/// [`RECORD_SHARE_BATCH`] are waiting and no publish is.
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// A batch with this many results is committed without waiting for more. Small next to
/// the worker pool, since finished but unrecorded attempts hold slots of their own
/// (`delivery.workers` of them) and, past those, the pool's.
const RECORD_SHARE_BATCH: usize = 16;

/// A batch with this many publishes is committed without waiting for more.
const PUBLISH_GROUP: usize = 4;

/// Over about how long [`PublishPace`] measures the publish rate.
const PACE_WINDOW: Duration = Duration::from_millis(100);

/// How fast publishes are coming, from the batches the writer takes: a rate that decays
/// over [`PACE_WINDOW`] (each publish adds `1 / window`, and the sum fades as
/// `e^(-age / window)`), so two publishes that happen to arrive together do not read as
/// a fast stream, and a pause brings it down by itself.
#[derive(Debug, Default)]
struct PublishPace {
    per_second: f64,
    last_batch: Option<Instant>,
}

impl PublishPace {
    /// The rate as it stands at `now`.
    fn per_second_at(&self, now: Instant) -> f64 {
        let Some(last) = self.last_batch else { return 0.0 };
        let age = now.saturating_duration_since(last).as_secs_f64();
        self.per_second * (-age / PACE_WINDOW.as_secs_f64()).exp()
    }

    /// Counts the `publishes` of a batch taken at `now`.
    fn observe(&mut self, now: Instant, publishes: usize) {
        self.per_second = self.per_second_at(now) + publishes as f64 / PACE_WINDOW.as_secs_f64();
        self.last_batch = Some(now);
    }

    /// Whether another publish is expected within `delay` of `now`.
    fn expects_another_within(&self, now: Instant, delay: Duration) -> bool {
        !delay.is_zero() && self.per_second_at(now) * delay.as_secs_f64() >= 1.0
    }
}

/// Where a publish is answered once it is durable.
type Reply = tokio::sync::oneshot::Sender<Result<Published, EngineError>>;

/// One transaction's worth of jobs.
#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    replies: Vec<Reply>,
    results: Vec<AttemptResult>,
}

impl Batch {
    fn add(&mut self, job: WriteJob) {
        match job {
            WriteJob::Publish(event, reply) => {
                self.events.push(event);
                self.replies.push(reply);
            }
            WriteJob::Result(result) => self.results.push(result),
        }
    }

    fn len(&self) -> usize {
        self.events.len() + self.results.len()
    }
}

/// Runs until every sender of `jobs` is gone, then returns after the last batch. A failed
/// write answers its publishes with the error and is retried for its results, so no
/// result is dropped; when publishes and results fail together they are written apart.
pub(super) async fn run(
    store: QueueWrites,
    clock: Clock,
    mut jobs: Inbox<WriteJob>,
    scheduler: To<SchedulerMsg>,
    policy: Arc<Policy>,
    commit_delay: Duration,
    metrics: Arc<Metrics>,
) {
    let mut carried = Vec::new();
    let mut pace = PublishPace::default();
    loop {
        let mut batch = Batch { results: std::mem::take(&mut carried), ..Batch::default() };
        if batch.len() == 0 {
            let Some(first) = jobs.recv().await else { break };
            batch.add(first);
        }
        let publish_delay =
            if pace.expects_another_within(Instant::now(), commit_delay) { commit_delay } else { Duration::ZERO };
        gather(&mut jobs, &mut batch, publish_delay).await;
        pace.observe(Instant::now(), batch.events.len());
        let Batch { events, replies, results } = batch;
        let (events, results): (Arc<[NewEvent]>, Arc<[AttemptResult]>) = (events.into(), results.into());
        let write = |events: &Arc<[NewEvent]>, results: &Arc<[AttemptResult]>| {
            store.publish_and_record(Arc::clone(events), Arc::clone(results), clock.now_ms(), Arc::clone(&policy))
        };
        let started = Instant::now();
        let (written, results) = match write(&events, &results).await {
            Err(err) if !events.is_empty() && !results.is_empty() => {
                // Either half may be what failed: publish alone now, so a result the store
                // cannot take never holds up publishing, and record on the next pass.
                tracing::warn!(error = %err, "a write of publishes and results failed; writing them apart");
                carried = results.to_vec();
                (write(&events, &Arc::from([])).await, Arc::from([]))
            }
            other => (other, results),
        };
        let Written { published, first_attempts: mut scheduled, recorded } = match written {
            Ok(written) => written,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    publishes = events.len(),
                    results = results.len(),
                    "cannot write publishes or delivery results; results are retried"
                );
                let err = EngineError::from(err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
                if !results.is_empty() {
                    // The results alone failed: give the store a moment.
                    tokio::time::sleep(RETRY_DELAY).await;
                    carried = results.to_vec();
                }
                continue;
            }
        };
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        metrics.commit_jobs.observe((events.len() + results.len()) as f64);
        metrics.events.inc_by(published.len() as u64);
        let filtered: u64 = published.iter().map(|p| u64::from(p.filtered)).sum();
        if filtered > 0 {
            metrics.filtered.inc_by(filtered);
        }
        for (reply, result) in replies.into_iter().zip(published) {
            let _ = reply.send(Ok(result));
        }
        // Outcome counters are looked up once per batch, not once per result.
        let succeeded = results.iter().filter(|r| r.succeeded).count() as u64;
        for (outcome, count) in [("succeeded", succeeded), ("failed", results.len() as u64 - succeeded)] {
            if count > 0 {
                metrics.attempts.get_or_create(&Outcome { outcome }).inc_by(count);
            }
        }
        for attempt in results.iter() {
            metrics.attempt_seconds.observe(attempt.duration_ms as f64 / 1000.0);
        }
        metrics.retries_scheduled.inc_by(recorded.scheduled.len() as u64);
        scheduled.extend(recorded.scheduled);
        let done: Vec<(DeliveryId, EndpointId)> = results.iter().map(|r| (r.attempt(), r.endpoint)).collect();
        if !(done.is_empty() && scheduled.is_empty())
            && scheduler.send(SchedulerMsg::Recorded(done, scheduled)).is_err()
        {
            tracing::error!("the scheduler stopped; new deliveries wait for the next start");
        }
        // An endpoint its health disabled: the jobs the scheduler kept of it say enabled.
        if recorded.disabled > 0 {
            let _ = scheduler.send(SchedulerMsg::EndpointsChanged);
        }
    }
}

/// Adds what is queued to `batch`, up to [`MAX_BATCH`] jobs in all.
fn take_queued(jobs: &mut Inbox<WriteJob>, batch: &mut Batch) {
    while batch.len() < MAX_BATCH {
        let Ok(job) = jobs.try_recv() else { return };
        batch.add(job);
    }
}

/// Adds whatever is queued to `batch`. When it holds fewer than [`PUBLISH_GROUP`]
/// publishes, waits up to `publish_delay` for more; when it holds only a few results,
/// up to [`RECORD_LINGER`] (or until a publish comes, which ends that wait).
async fn gather(jobs: &mut Inbox<WriteJob>, batch: &mut Batch, publish_delay: Duration) {
    take_queued(jobs, batch);
    if !batch.events.is_empty() && !publish_delay.is_zero() {
        let until = tokio::time::Instant::now() + publish_delay;
        while batch.events.len() < PUBLISH_GROUP && batch.len() < MAX_BATCH {
            let Ok(Some(job)) = tokio::time::timeout_at(until, jobs.recv()).await else { break };
            batch.add(job);
            take_queued(jobs, batch);
        }
    }
    let linger_until = tokio::time::Instant::now() + RECORD_LINGER;
    while batch.events.is_empty() && batch.results.len() < RECORD_SHARE_BATCH {
        let Ok(Some(job)) = tokio::time::timeout_at(linger_until, jobs.recv()).await else { return };
        batch.add(job);
        take_queued(jobs, batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::Store;
    use crate::store::model::EndpointRecord;
    use crate::store::model::{Owner, QueueKey};

    const NOW_MS: u64 = 1_800_000_000_000;

    /// A store with one endpoint and `n` published events; the queue keys of their attempts.
    async fn store_with_attempts(n: usize) -> (tempfile::TempDir, QueueWrites, EndpointId, Vec<QueueKey>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        let owner = store.test_owner(Mode::Test).await;
        let endpoint = EndpointRecord::for_test(owner, "http://127.0.0.1:9/", "*");
        store.insert_endpoint(endpoint.clone()).await.unwrap();
        let events: Vec<NewEvent> = (0..n).map(|_| an_event(owner)).collect();
        let (_, scheduled) = store.publish_events(events, NOW_MS).await.unwrap();
        (dir, store, endpoint.id, scheduled.keys().to_vec())
    }

    /// A new event of type `a.b` of `owner`.
    fn an_event(owner: Owner) -> NewEvent {
        crate::payload::new_event(owner, "a.b", &serde_json::json!({}), crate::clock::unix_now_ms()).unwrap()
    }

    fn succeeded(key: QueueKey, endpoint: EndpointId) -> WriteJob {
        WriteJob::Result(AttemptResult {
            queue_key: key,
            endpoint,
            succeeded: true,
            response_status: Some(200),
            response_body: None,
            error: None,
            duration_ms: 1,
            attempted_at_ms: 0,
            request_headers: vec![],
            retry_after: None,
            unreached: false,
            cancelled: false,
            sent: None,
            sealed: false,
        })
    }

    /// Starts a writer task on `store` with `queued` already waiting for it.
    fn start(
        store: &QueueWrites,
        queued: Vec<WriteJob>,
    ) -> (To<WriteJob>, Inbox<SchedulerMsg>, tokio::task::JoinHandle<()>) {
        let (jobs, jobs_rx) = tokio::sync::mpsc::unbounded_channel();
        for job in queued {
            assert!(jobs.send(job).is_ok());
        }
        let (scheduler, inbox) = tokio::sync::mpsc::unbounded_channel();
        let policy = Arc::new(Policy {
            schedule: vec![],
            disable_after: Duration::from_secs(3600),
            undelivered_hours: 72,
            failing_after: None,
        });
        let clock = Clock::manual(NOW_MS);
        let task = tokio::spawn(run(store.clone(), clock, jobs_rx, scheduler, policy, Duration::ZERO, Arc::default()));
        (jobs, inbox, task)
    }

    /// The next message the scheduler gets, as (attempts recorded, queue entries scheduled).
    async fn recorded(inbox: &mut Inbox<SchedulerMsg>) -> (Vec<DeliveryId>, Vec<QueueKey>) {
        match tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await {
            Ok(Some(SchedulerMsg::Recorded(done, scheduled))) => {
                (done.into_iter().map(|(id, _)| id).collect(), scheduled.keys().to_vec())
            }
            Ok(Some(_)) => panic!("expected Recorded (EndpointsChanged comes only after a disabling result)"),
            Ok(None) => panic!("the writer stopped"),
            Err(_) => panic!("no word from the writer in 30 s"),
        }
    }

    #[test]
    fn the_pace_expects_another_publish_only_when_they_come_fast_enough() {
        let start = Instant::now();
        let at = |micros: u64| start + Duration::from_micros(micros);
        let delay = Duration::from_millis(2);
        let (mut fast, mut slow, mut paired) = (PublishPace::default(), PublishPace::default(), PublishPace::default());
        for n in 0..1_000u64 {
            fast.observe(at(n * 1_000), 1); // 1,000 a second
            slow.observe(at(n * 5_000), 1); // 200 a second
            // 200 a second arriving in pairs 0.1 ms apart: still 200 a second.
            paired.observe(at(n * 10_000), 1);
            paired.observe(at(n * 10_000 + 100), 1);
        }
        assert!(fast.expects_another_within(at(999_500), delay), "{fast:?}");
        assert!((fast.per_second_at(at(999_000)) - 1_000.0).abs() < 60.0, "{fast:?}");
        assert!(!slow.expects_another_within(at(4_995_100), delay), "{slow:?}");
        assert!(!paired.expects_another_within(at(9_990_200), delay), "{paired:?}");
        assert!(!fast.expects_another_within(at(999_500), Duration::ZERO), "a zero delay never waits");
        // After a pause the rate has faded by itself.
        assert!(!fast.expects_another_within(at(1_500_000), delay), "{fast:?}");
        assert!(!PublishPace::default().expects_another_within(start, delay), "nothing seen yet");
    }

    #[tokio::test]
    async fn a_publish_waits_for_company_only_as_long_as_it_is_told() {
        let (_dir, store, _, _) = store_with_attempts(0).await;
        let owner = store.test_owner(Mode::Test).await;
        let publish = || WriteJob::Publish(an_event(owner), tokio::sync::oneshot::channel().0);
        // Told to wait: publishes arriving meanwhile join, up to a group of four.
        let (jobs, mut jobs_rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(jobs.send(publish()).is_ok());
        let late = {
            let jobs = jobs.clone();
            let more: Vec<WriteJob> = (0..5).map(|_| publish()).collect();
            std::thread::spawn(move || {
                for job in more {
                    assert!(jobs.send(job).is_ok());
                }
            })
        };
        let mut batch = Batch::default();
        batch.add(jobs_rx.recv().await.unwrap());
        let started = Instant::now();
        gather(&mut jobs_rx, &mut batch, Duration::from_secs(30)).await;
        assert!(batch.events.len() >= PUBLISH_GROUP, "{} publishes", batch.events.len());
        assert!(started.elapsed() < Duration::from_secs(10), "it stopped at a full group, not at the deadline");
        late.join().unwrap();
        while jobs_rx.try_recv().is_ok() {} // any that came after the group was full
        // Alone, a publish waits out the delay and goes by itself; with no delay, at once.
        for (delay, at_least) in
            [(Duration::from_millis(50), Duration::from_millis(50)), (Duration::ZERO, Duration::ZERO)]
        {
            let mut batch = Batch::default();
            batch.add(publish());
            let started = Instant::now();
            gather(&mut jobs_rx, &mut batch, delay).await;
            assert_eq!(batch.events.len(), 1);
            assert!(started.elapsed() >= at_least && started.elapsed() < Duration::from_secs(10));
        }
    }

    #[tokio::test]
    async fn results_waiting_together_share_one_commit() {
        let (_dir, store, endpoint, keys) = store_with_attempts(3).await;
        let results = keys.iter().map(|key| succeeded(*key, endpoint)).collect();
        let (jobs, mut inbox, task) = start(&store, results);
        let (done, scheduled) = recorded(&mut inbox).await;
        assert_eq!(done, keys.iter().map(|k| k.attempt()).collect::<Vec<_>>(), "all three in one transaction");
        assert!(scheduled.is_empty());
        assert!(store.due_entries(None, u64::MAX, 10, Vec::new()).await.unwrap().is_empty(), "they left the queue");
        drop(jobs);
        task.await.unwrap();
        assert!(inbox.try_recv().is_err(), "nothing more was written");
    }

    #[tokio::test]
    async fn a_publish_shares_its_commit_with_waiting_results() {
        let (_dir, store, endpoint, keys) = store_with_attempts(1).await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let event = an_event(store.test_owner(Mode::Test).await);
        let queued = vec![succeeded(keys[0], endpoint), WriteJob::Publish(event, reply)];
        let (jobs, mut inbox, task) = start(&store, queued);
        let published = answer.await.unwrap().unwrap();
        assert_eq!(published.deliveries, 1);
        let (done, scheduled) = recorded(&mut inbox).await;
        assert_eq!(done, vec![keys[0].attempt()], "the result went with the publish");
        assert_eq!(scheduled.len(), 1, "the published event's first attempt");
        assert_eq!(scheduled[0].due_ms(), NOW_MS, "due at the writer's clock");
        assert_eq!(store.due_entries(None, u64::MAX, 10, Vec::new()).await.unwrap().len(), 1);
        drop(jobs);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_result_that_disables_its_endpoint_tells_the_scheduler_its_kept_jobs_are_stale() {
        let (_dir, store, endpoint, keys) = store_with_attempts(2).await;
        let gone = |key: QueueKey| match succeeded(key, endpoint) {
            WriteJob::Result(result) => {
                WriteJob::Result(AttemptResult { succeeded: false, response_status: Some(410), ..result })
            }
            publish => publish,
        };
        // A 200 disables nothing; a 410 disables the endpoint at once.
        let (jobs, mut inbox, task) = start(&store, vec![succeeded(keys[0], endpoint)]);
        assert_eq!(recorded(&mut inbox).await.0, vec![keys[0].attempt()]);
        assert!(jobs.send(gone(keys[1])).is_ok());
        assert_eq!(recorded(&mut inbox).await.0, vec![keys[1].attempt()]);
        match tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await {
            Ok(Some(SchedulerMsg::EndpointsChanged)) => {}
            _ => panic!("the scheduler was not told the endpoint changed"),
        }
        drop(jobs);
        task.await.unwrap();
        assert!(inbox.try_recv().is_err(), "told once, and not after the 200");
    }

    #[tokio::test]
    async fn a_result_the_store_cannot_take_never_holds_up_publishing() {
        let (_dir, store, endpoint, keys) = store_with_attempts(1).await;
        store.put_raw_attempt_for_test(keys[0].attempt(), Some(b"not json".to_vec())).await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let event = an_event(store.test_owner(Mode::Test).await);
        let queued = vec![succeeded(keys[0], endpoint), WriteJob::Publish(event, reply)];
        let (jobs, mut inbox, task) = start(&store, queued);
        assert_eq!(answer.await.unwrap().unwrap().deliveries, 1, "the publish went through alone");
        let (done, scheduled) = recorded(&mut inbox).await;
        assert!(done.is_empty(), "the unreadable attempt is not recorded");
        assert_eq!(scheduled.len(), 1);
        // Once the attempt can be dealt with (here: it is gone), the retried result goes.
        store.put_raw_attempt_for_test(keys[0].attempt(), None).await;
        let (done, _) = recorded(&mut inbox).await;
        assert_eq!(done, vec![keys[0].attempt()]);
        drop(jobs);
        task.await.unwrap();
    }
}
