//! The scheduler and the delivery runtime.
//!
//! The durable queue in redb (`(due ms, attempt id)`) is the truth. The scheduler thread
//! keeps only a bounded near window of it in memory: entries due within
//! [`NEAR_WINDOW_MS`] wait in an ordered timer map until due, then in per-endpoint ready
//! queues until their endpoint has a free slot (`per_endpoint_concurrency`) and fewer than
//! `delivery.workers` attempts are in flight. Each attempt is a task on the delivery
//! runtime (one thread, async HTTP), which reports back; the scheduler hands results to
//! the writer, which commits each batch of them (with any publishes waiting) in one
//! transaction that removes the queue entries and schedules retries. Because an entry
//! leaves the queue only with its result, a crash at any point re-runs what was in flight
//! (at least once), and a restart recovers every scheduled attempt.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use super::handoff::{self, Receiver, Sender};
use super::http::{HttpSender, SendOutcome};
use super::writer::{self, WriteJob, WriterSettings};
use crate::clock::{unix_now, unix_now_ms};
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::deliveries::{AttemptResult, AttemptStatus, DueEntry, HealthPolicy, Job, QueueKey};
use crate::store::endpoints::{EndpointRecord, EndpointStatus};
use crate::store::events::{NewEvent, Published};

/// How far ahead of now queue entries are loaded into memory, in ms.
const NEAR_WINDOW_MS: u64 = 1_000;

/// The most queue entries held in memory (timer map, ready queues and in flight).
const MAX_LOADED: usize = 20_000;

/// The most entries of one endpoint held in memory, so one endpoint's backlog cannot fill
/// the window and starve the others.
const MAX_LOADED_PER_ENDPOINT: usize = 5_000;

/// The longest the scheduler sleeps without looking at the queue, as a safety net.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How long to wait before retrying after the store failed.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Messages to the scheduler thread.
pub(crate) enum SchedulerMsg {
    /// New queue entries were committed (possibly earlier than the scan position).
    Scheduled(Vec<QueueKey>),
    /// An attempt finished (not yet recorded).
    Done(Box<AttemptResult>, u128),
    /// The writer committed these results: `(attempt id, endpoint)`, and the queue keys
    /// it scheduled (retries, and the first attempts of published events).
    Recorded(Vec<(u128, u128)>, Vec<QueueKey>),
    /// Finish what is in flight, record it, and stop.
    Shutdown,
}

/// One attempt handed to the delivery runtime.
struct WorkItem {
    job: Job,
    key: QueueKey,
}

/// The running delivery engine.
pub struct Engine {
    scheduler: Sender<SchedulerMsg>,
    /// Wakes the session expirer (a new session may expire before its next wake-up);
    /// dropped to stop it.
    expirer: Mutex<Option<crossbeam_channel::Sender<()>>>,
    /// Dropped to stop the retention thread.
    retention: Mutex<Option<crossbeam_channel::Sender<()>>>,
    /// Where publishes go; dropped to stop publishing.
    writer: Mutex<Option<Sender<WriteJob>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sender: HttpSender,
    /// The delivery runtime, where every request is made (the API's pings too).
    runtime: tokio::runtime::Handle,
}

impl Engine {
    /// Starts the writer, the scheduler, the session expirer, the retention thread and
    /// the delivery runtime's thread. Parked attempts of endpoints that are enabled
    /// are put back on the queue first.
    pub fn start(
        store: Arc<Store>,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, crate::store::StoreError> {
        store.unpark(unix_now_ms())?;
        let sender = HttpSender::new(config);
        let (scheduler_tx, scheduler_rx) = handoff::handoff();
        let (write_tx, write_rx) = handoff::handoff();
        let (work_tx, work_rx) = tokio::sync::mpsc::unbounded_channel::<WorkItem>();
        let mut threads = Vec::new();

        let (runtime_tx, runtime_rx) = std::sync::mpsc::channel();
        {
            let done = scheduler_tx.clone();
            let sender = sender.clone();
            threads.push(spawn("stile-sender", move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the OS gives the delivery runtime its timers and sockets");
                let _ = runtime_tx.send(runtime.handle().clone());
                runtime.block_on(send_all(work_rx, done, sender));
            }));
        }
        let runtime = runtime_rx.recv().expect("the delivery runtime starts");
        {
            let store = Arc::clone(&store);
            let scheduler = scheduler_tx.clone();
            let metrics = Arc::clone(&metrics);
            let settings = WriterSettings {
                schedule: config.delivery.retry_schedule.iter().map(|d| config.scaled(*d)).collect(),
                policy: HealthPolicy { disable_after: config.delivery.disable_after },
            };
            threads.push(spawn("stile-writer", move || writer::run(store, write_rx, scheduler, settings, metrics)));
        }
        let (expirer_tx, expirer_rx) = crossbeam_channel::unbounded();
        {
            let store = Arc::clone(&store);
            let scheduler = scheduler_tx.clone();
            let metrics = Arc::clone(&metrics);
            threads.push(spawn("stile-expirer", move || expirer(store, expirer_rx, scheduler, metrics)));
        }
        let (retention_tx, retention_rx) = crossbeam_channel::bounded(0);
        {
            let store = Arc::clone(&store);
            let retention = config.retention.events;
            threads.push(spawn("stile-retention", move || crate::retention::run(store, retention, retention_rx)));
        }
        let scheduler = Scheduler::new(
            store,
            work_tx,
            write_tx.clone(),
            config.delivery.workers,
            config.delivery.per_endpoint_concurrency,
        );
        threads.push(spawn("stile-scheduler", move || scheduler.run(scheduler_rx)));

        Ok(Engine {
            scheduler: scheduler_tx,
            expirer: Mutex::new(Some(expirer_tx)),
            retention: Mutex::new(Some(retention_tx)),
            writer: Mutex::new(Some(write_tx)),
            threads: Mutex::new(threads),
            sender,
            runtime,
        })
    }

    /// Stores an event with its deliveries (group-committed with other publishes) and
    /// answers once it is durable.
    pub async fn publish(&self, event: NewEvent) -> Result<Published, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|writer| writer.send(WriteJob::Publish(event, reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(shutting_down());
        }
        answer.await.unwrap_or_else(|_| Err(shutting_down()))
    }

    /// Tells the scheduler about queue entries committed outside the writer.
    pub fn notify(&self, keys: Vec<QueueKey>) {
        if !keys.is_empty() {
            let _ = self.scheduler.send(SchedulerMsg::Scheduled(keys));
        }
    }

    /// Tells the expirer a session was created, so it looks at its next deadline again.
    pub fn session_scheduled(&self) {
        if let Some(expirer) = self.expirer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = expirer.send(());
        }
    }

    /// Signs and sends `body` to `endpoint` now, outside the queue (the test ping), on the
    /// delivery runtime; returns the outcome and the headers sent.
    pub async fn send_now(
        &self,
        endpoint: EndpointRecord,
        event_id: String,
        body: bytes::Bytes,
        now: i64,
    ) -> Result<(SendOutcome, Vec<(String, String)>), ApiError> {
        let sender = self.sender.clone();
        let sending = async move { super::sign_and_send(&sender, &endpoint, &event_id, body, now).await };
        self.runtime.spawn(sending).await.map_err(|_| shutting_down())
    }

    /// Stops publishing, lets attempts in flight finish (each bounded by the delivery
    /// timeout), records them, and joins every thread. Whatever is still queued runs at
    /// the next start. Safe to call more than once.
    pub fn shutdown(&self) {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.expirer.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.retention.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.scheduler.send(SchedulerMsg::Shutdown);
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "The server is shutting down; retry the request in a moment.")
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name.to_string()).spawn(body).expect("the OS starts a thread")
}

/// Makes every attempt the scheduler hands over, each as a task on the delivery runtime
/// (the scheduler keeps at most `delivery.workers` in flight), until the scheduler stops.
async fn send_all(
    mut work: tokio::sync::mpsc::UnboundedReceiver<WorkItem>,
    done: Sender<SchedulerMsg>,
    sender: HttpSender,
) {
    // Shared by the tasks: cloning a hand-off sender takes its lock, once per attempt
    // would be twice more than the send itself.
    let shared = Arc::new((sender, done));
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(item) = work.recv().await {
        let shared = Arc::clone(&shared);
        in_flight.spawn(async move {
            let (sender, done) = &*shared;
            let endpoint_key = item.job.attempt.endpoint_id.as_u128();
            let result = attempt(sender, item.job, item.key).await;
            let _ = done.send(SchedulerMsg::Done(Box::new(result), endpoint_key));
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// The most sessions expired in one transaction.
const MAX_EXPIRE_BATCH: usize = 512;

/// The session expirer: sleeps until the next session is due to expire (the durable
/// `session_expiry` table is the truth, so expiries survive restarts), expires it with its
/// event, and hands the event's deliveries to the scheduler. Woken early when a session
/// is created; stops when the engine drops its sender.
fn expirer(
    store: Arc<Store>,
    wake: crossbeam_channel::Receiver<()>,
    scheduler: Sender<SchedulerMsg>,
    metrics: Arc<Metrics>,
) {
    let mut wait = Duration::ZERO;
    while let Ok(()) | Err(RecvTimeoutError::Timeout) = wake.recv_timeout(wait) {
        let now = unix_now_ms();
        wait = match store.expire_due_sessions(now, MAX_EXPIRE_BATCH, |s| {
            crate::lifecycle::Move::Expire.apply(s, (now / 1000) as i64)
        }) {
            Ok((expired, scheduled)) => {
                metrics.events.inc_by(expired as u64);
                if !scheduled.is_empty() {
                    let _ = scheduler.send(SchedulerMsg::Scheduled(scheduled));
                }
                if expired == MAX_EXPIRE_BATCH {
                    Duration::ZERO
                } else {
                    match store.next_session_expiry() {
                        Ok(Some(due)) => Duration::from_millis(due.saturating_sub(unix_now_ms())).min(MAX_IDLE * 60),
                        Ok(None) => MAX_IDLE * 60,
                        Err(_) => RETRY_DELAY,
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot expire sessions; retrying");
                RETRY_DELAY
            }
        };
    }
}

/// Signs and sends one attempt.
async fn attempt(sender: &HttpSender, job: Job, key: QueueKey) -> AttemptResult {
    let now = unix_now();
    let mut result = AttemptResult {
        attempt_id: key.1,
        queue_key: key,
        succeeded: false,
        response_status: None,
        response_body: None,
        error: None,
        duration_ms: 0,
        attempted_at: now,
        request_headers: Vec::new(),
        retry_after: None,
    };
    let (Some(endpoint), Some(body)) = (job.endpoint, job.body) else {
        result.error = Some("endpoint deleted".into());
        return result;
    };
    let event_id = job.attempt.event_id.to_string();
    let (outcome, headers) = super::sign_and_send(sender, &endpoint, &event_id, body.into(), now).await;
    tracing::debug!(
        attempt = %job.attempt.id,
        number = job.attempt.attempt,
        event = %job.attempt.event_id,
        event_type = %job.attempt.event_type,
        endpoint = %endpoint.id,
        succeeded = outcome.succeeded(),
        status = ?outcome.status,
        error = ?outcome.error,
        ms = outcome.duration_ms,
        "delivery attempt"
    );
    result.succeeded = outcome.succeeded();
    result.response_status = outcome.status;
    result.response_body = outcome.body_excerpt;
    result.error = outcome.error;
    result.duration_ms = outcome.duration_ms;
    result.request_headers = headers;
    result.retry_after = outcome.retry_after;
    result
}

/// Bounds on the queue entries held in memory.
#[derive(Debug, Clone, Copy)]
struct LoadLimits {
    /// In all.
    total: usize,
    /// For one endpoint.
    per_endpoint: usize,
}

/// The scheduler's state; owned by its thread.
struct Scheduler {
    store: Arc<Store>,
    work: tokio::sync::mpsc::UnboundedSender<WorkItem>,
    workers: usize,
    per_endpoint: usize,
    /// Every queue key up to here has been looked at.
    cursor: Option<QueueKey>,
    /// Look again from just after here before going on from `cursor`.
    rescan_after: Option<Option<QueueKey>>,
    /// Attempt ids in memory (timer, ready, or in flight).
    loaded: HashSet<u128>,
    /// Loaded entries per endpoint.
    loaded_per_endpoint: HashMap<u128, usize>,
    /// The first key skipped per endpoint because it had too many loaded.
    skipped: HashMap<u128, QueueKey>,
    /// Loaded entries not yet due: the timer.
    timer: BTreeMap<QueueKey, DueEntry>,
    /// Due entries waiting for their endpoint to have a free slot.
    ready: HashMap<u128, VecDeque<DueEntry>>,
    /// Attempts in flight per endpoint.
    in_flight: HashMap<u128, usize>,
    /// Attempts in flight in all.
    busy: usize,
    /// How many entries memory may hold.
    limits: LoadLimits,
    /// Where finished attempts go to be recorded.
    writer: Sender<WriteJob>,
    /// Finished attempts not yet recorded.
    unrecorded: usize,
    /// When the queue must be read again even if nothing signalled a new entry: the next
    /// unloaded entry enters the near window then (0: read on every pass).
    next_scan_ms: u64,
    stopping: bool,
}

impl Scheduler {
    fn new(
        store: Arc<Store>,
        work: tokio::sync::mpsc::UnboundedSender<WorkItem>,
        writer: Sender<WriteJob>,
        workers: usize,
        per_endpoint: usize,
    ) -> Self {
        Self {
            store,
            work,
            workers,
            per_endpoint,
            cursor: None,
            rescan_after: None,
            loaded: HashSet::new(),
            loaded_per_endpoint: HashMap::new(),
            skipped: HashMap::new(),
            timer: BTreeMap::new(),
            ready: HashMap::new(),
            in_flight: HashMap::new(),
            busy: 0,
            limits: LoadLimits { total: MAX_LOADED, per_endpoint: MAX_LOADED_PER_ENDPOINT },
            writer,
            unrecorded: 0,
            next_scan_ms: 0,
            stopping: false,
        }
    }

    fn run(mut self, inbox: Receiver<SchedulerMsg>) {
        let mut wait = Duration::ZERO;
        loop {
            match inbox.recv_timeout(wait) {
                Ok(msg) => self.handle(msg),
                Err(handoff::RecvTimeoutError::Timeout) => {}
                Err(handoff::RecvTimeoutError::Disconnected) => self.stopping = true,
            }
            for msg in inbox.take_queued(usize::MAX) {
                self.handle(msg);
            }
            if self.stopping {
                if self.busy == 0 && self.unrecorded == 0 {
                    break;
                }
                wait = MAX_IDLE;
                continue;
            }
            wait = match self.load_and_dispatch() {
                Ok(wait) => wait,
                Err(err) => {
                    tracing::error!(error = %err, "the scheduler cannot read the queue; retrying");
                    RETRY_DELAY
                }
            };
        }
        tracing::debug!("scheduler stopped");
    }

    fn handle(&mut self, msg: SchedulerMsg) {
        match msg {
            SchedulerMsg::Scheduled(keys) => {
                if let Some(min) = keys.into_iter().min() {
                    self.rescan_from(min);
                }
            }
            SchedulerMsg::Done(result, endpoint) => {
                // The slot is free as soon as the request is over; the entry stays loaded
                // (so it is not sent again) until its result is committed.
                self.busy -= 1;
                if let Some(n) = self.in_flight.get_mut(&endpoint) {
                    *n -= 1;
                }
                self.unrecorded += 1;
                if self.writer.send(WriteJob::Result(*result, endpoint)).is_err() {
                    tracing::error!("the writer stopped; results are lost until restart");
                }
            }
            SchedulerMsg::Recorded(done, scheduled) => {
                // Capacity came back: dispatch on this pass (the caller goes on to it).
                self.unrecorded -= done.len();
                for (attempt, endpoint) in done {
                    self.release(attempt, endpoint);
                }
                if let Some(min) = scheduled.into_iter().min() {
                    self.rescan_from(min);
                }
            }
            SchedulerMsg::Shutdown => self.stopping = true,
        }
    }

    /// Makes the next pass read the queue, starting at `key` (inclusive) if that is earlier
    /// than planned.
    fn rescan_from(&mut self, key: QueueKey) {
        self.next_scan_ms = 0;
        let after = just_before(key);
        let planned = self.rescan_after.unwrap_or(self.cursor);
        if after < planned {
            self.rescan_after = Some(after);
        }
    }

    /// Forgets an entry that left memory.
    fn release(&mut self, attempt: u128, endpoint: u128) {
        self.loaded.remove(&attempt);
        if let Some(n) = self.loaded_per_endpoint.get_mut(&endpoint) {
            *n -= 1;
            if *n == 0 {
                self.loaded_per_endpoint.remove(&endpoint);
            }
            let remaining = self.loaded_per_endpoint.get(&endpoint).copied().unwrap_or(0);
            if remaining <= self.limits.per_endpoint / 2
                && let Some(first_skipped) = self.skipped.remove(&endpoint)
            {
                self.rescan_from(first_skipped);
            }
        }
    }

    /// Loads due entries from the queue, moves due ones to the ready queues, dispatches
    /// what capacity allows, and says how long to wait before looking again.
    fn load_and_dispatch(&mut self) -> Result<Duration, crate::store::StoreError> {
        let now = unix_now_ms();
        // Every new entry is signalled (`rescan_from`), so between signals the queue is read
        // only when its next unloaded entry comes into the near window: a pass that only
        // handled results costs no queue scan.
        let scan = now >= self.next_scan_ms;
        if scan {
            self.load(now)?;
        }
        while let Some(entry) = self.timer.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let due = entry.remove();
            self.ready.entry(due.endpoint).or_default().push_back(due);
        }
        self.dispatch()?;

        if self.rescan_after.is_some() && self.loaded.len() < self.limits.total {
            return Ok(Duration::ZERO);
        }
        if scan {
            self.next_scan_ms = if self.loaded.len() >= self.limits.total {
                // Memory is full: look again as soon as results free room.
                0
            } else {
                // Entries not signalled (none are known) are still found within MAX_IDLE.
                let safety_net = now + MAX_IDLE.as_millis() as u64;
                match self.store.next_due_after(self.cursor)? {
                    Some(due) => due.saturating_sub(NEAR_WINDOW_MS).min(safety_net),
                    None => safety_net,
                }
            };
        }
        // Wake when the first loaded entry is due, or when the next unloaded one enters
        // the near window; results and new entries wake the loop anyway.
        // While memory is full only results (which wake the loop) make room.
        let scan_at = if self.loaded.len() >= self.limits.total { u64::MAX } else { self.next_scan_ms };
        let wake_at = self.timer.first_key_value().map_or(scan_at, |(k, _)| k.0.min(scan_at));
        let now = unix_now_ms();
        Ok(Duration::from_millis(wake_at.saturating_sub(now)).min(MAX_IDLE))
    }

    fn load(&mut self, now: u64) -> Result<(), crate::store::StoreError> {
        let room = self.limits.total.saturating_sub(self.loaded.len());
        if room == 0 {
            return Ok(());
        }
        let rescanning = self.rescan_after.is_some();
        let start = self.rescan_after.take().unwrap_or(self.cursor);
        let entries = self.store.due_entries(start, now + NEAR_WINDOW_MS, room)?;
        let full = entries.len() >= room;
        let last = entries.last().map(|e| e.key);
        for entry in entries {
            let id = entry.key.1;
            if self.loaded.contains(&id) {
                continue;
            }
            let count = self.loaded_per_endpoint.entry(entry.endpoint).or_default();
            if *count >= self.limits.per_endpoint {
                let first = self.skipped.entry(entry.endpoint).or_insert(entry.key);
                *first = (*first).min(entry.key);
                continue;
            }
            *count += 1;
            self.loaded.insert(id);
            self.timer.insert(entry.key, entry);
        }
        if let Some(last) = last {
            if Some(last) > self.cursor {
                self.cursor = Some(last);
            }
            if rescanning && full && Some(last) < self.cursor {
                // The rescan stopped short of the cursor: go on from here next time.
                self.rescan_after = Some(Some(last));
            }
        }
        Ok(())
    }

    /// Takes back an entry chosen for dispatch that will not be sent: frees its endpoint
    /// slot and forgets it.
    fn undispatch(&mut self, entry: &DueEntry) {
        if let Some(n) = self.in_flight.get_mut(&entry.endpoint) {
            *n -= 1;
        }
        self.release(entry.key.1, entry.endpoint);
    }

    /// Hands ready entries to the delivery runtime, within the in-flight and per-endpoint
    /// limits.
    fn dispatch(&mut self) -> Result<(), crate::store::StoreError> {
        let mut chosen: Vec<DueEntry> = Vec::new();
        // Finished attempts whose results are not yet committed count against the pool
        // too: they are what a crash would repeat, so at most `workers` ever are.
        let mut free = self.workers.saturating_sub(self.busy + self.unrecorded);
        for (endpoint, queue) in self.ready.iter_mut() {
            let in_flight = self.in_flight.entry(*endpoint).or_default();
            while free > 0 && *in_flight < self.per_endpoint {
                let Some(entry) = queue.pop_front() else { break };
                *in_flight += 1;
                free -= 1;
                chosen.push(entry);
            }
        }
        self.ready.retain(|_, q| !q.is_empty());
        if chosen.is_empty() {
            return Ok(());
        }
        let ids: Vec<u128> = chosen.iter().map(|e| e.key.1).collect();
        let jobs = match self.store.jobs(&ids) {
            Ok(jobs) => jobs,
            Err(err) => {
                // Put them back and try later.
                for entry in chosen {
                    *self.in_flight.entry(entry.endpoint).or_default() -= 1;
                    self.ready.entry(entry.endpoint).or_default().push_front(entry);
                }
                return Err(err);
            }
        };
        let mut parked = Vec::new();
        for (entry, job) in chosen.into_iter().zip(jobs) {
            let sendable = job.filter(|j| {
                j.attempt.status == AttemptStatus::Pending
                    && j.endpoint.as_ref().is_none_or(|e| e.status != EndpointStatus::Disabled)
            });
            let Some(job) = sendable else {
                // Parked (disabled endpoint) or no longer pending: it leaves the queue.
                self.undispatch(&entry);
                parked.push(entry.key);
                continue;
            };
            self.busy += 1;
            if self.work.send(WorkItem { job, key: entry.key }).is_err() {
                self.busy -= 1;
                self.undispatch(&entry);
            }
        }
        if !parked.is_empty() {
            // Any left on the queue (their endpoint was enabled meanwhile) are looked at again.
            if let Some(min) = self.store.park(&parked)?.into_iter().min() {
                self.rescan_from(min);
            }
        }
        Ok(())
    }
}

/// The queue key just before `key`, so a scan "after" it includes `key`.
fn just_before(key: QueueKey) -> Option<QueueKey> {
    match key {
        (0, 0) => None,
        (due, 0) => Some((due - 1, u128::MAX)),
        (due, id) => Some((due, id - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::endpoints::EndpointRecord;
    use crate::store::events::NewEvent;

    fn endpoint(store: &Store, event_type: &str) -> u128 {
        let record = EndpointRecord::for_test(Mode::Test, "http://127.0.0.1:9/", event_type);
        store.insert_endpoint(&record).unwrap();
        record.id.as_u128()
    }

    fn publish(store: &Store, event_type: &str, n: usize, now_ms: u64) {
        let events: Vec<NewEvent> =
            (0..n).map(|_| NewEvent::new(Mode::Test, event_type, &serde_json::json!({}), 0).unwrap()).collect();
        store.publish_events(&events, now_ms).unwrap();
    }

    fn loaded_for(scheduler: &Scheduler, endpoint: u128) -> usize {
        scheduler.timer.values().filter(|e| e.endpoint == endpoint).count()
    }

    #[test]
    fn one_endpoints_backlog_cannot_fill_memory_and_is_reloaded_as_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let busy = endpoint(&store, "a.x");
        let other = endpoint(&store, "b.x");
        let now = unix_now_ms();
        publish(&store, "a.x", 50, now - 10);
        publish(&store, "b.x", 10, now - 5);

        let (work, _work_rx) = tokio::sync::mpsc::unbounded_channel();
        let (writer, _writer_rx) = handoff::handoff();
        let mut scheduler = Scheduler::new(Arc::clone(&store), work, writer, 0, 1);
        scheduler.limits = LoadLimits { total: 30, per_endpoint: 20 };

        // The busy endpoint's 50 entries come first in the queue; the other's 10 still
        // get loaded within a few passes, and memory never holds more than the limits.
        for _ in 0..10 {
            scheduler.load(unix_now_ms()).unwrap();
            assert!(scheduler.loaded.len() <= 30);
            assert!(loaded_for(&scheduler, busy) <= 20);
        }
        assert_eq!(loaded_for(&scheduler, busy), 20);
        assert_eq!(loaded_for(&scheduler, other), 10);

        // As the busy endpoint drains, its skipped entries are found again.
        let done: Vec<QueueKey> =
            scheduler.timer.iter().filter(|(_, e)| e.endpoint == busy).map(|(k, _)| *k).take(15).collect();
        for key in &done {
            scheduler.timer.remove(key);
            scheduler.release(key.1, busy);
            store
                .write(|tx| {
                    tx.open_table(crate::store::tables::QUEUE)?.remove(*key)?;
                    Ok(())
                })
                .unwrap();
        }
        scheduler.load(unix_now_ms()).unwrap();
        assert_eq!(loaded_for(&scheduler, busy), 20, "refilled from the skipped entries");
        let mut seen: Vec<u128> = scheduler.timer.keys().map(|k| k.1).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), scheduler.timer.len(), "no entry loaded twice");
    }

    #[test]
    fn entries_scheduled_behind_the_scan_position_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let target = endpoint(&store, "a.x");
        let (work, _work_rx) = tokio::sync::mpsc::unbounded_channel();
        let (writer, _writer_rx) = handoff::handoff();
        let mut scheduler = Scheduler::new(Arc::clone(&store), work, writer, 0, 1);
        let now = unix_now_ms();
        publish(&store, "a.x", 1, now + 500);
        scheduler.load(now).unwrap();
        assert_eq!(loaded_for(&scheduler, target), 1);
        // An entry due earlier than the one the cursor has passed.
        publish(&store, "a.x", 1, now - 1_000);
        scheduler.load(now).unwrap();
        assert_eq!(loaded_for(&scheduler, target), 1, "not seen without a notice");
        let key = scheduler.store.due_entries(None, now, 1).unwrap()[0].key;
        scheduler.handle(SchedulerMsg::Scheduled(vec![key]));
        scheduler.load(now).unwrap();
        assert_eq!(loaded_for(&scheduler, target), 2);
    }
}
