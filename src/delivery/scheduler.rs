//! The scheduler: a timer wheel over the durable queue, one task of the engine's runtime.
//!
//! The durable queue (`crate::store::model::queue`, kept by each backend) is the truth.
//! The scheduler keeps only a bounded near window of it in memory: entries due within
//! [`NEAR_WINDOW_MS`] wait in an ordered timer map until due, then in per-endpoint ready
//! queues until their endpoint's flow allows a start (`flow.rs`: its in-flight cap, its
//! rate, a pause after a refusal) and fewer than `delivery.workers` attempts are in
//! flight (finished attempts not yet recorded hold up to as many slots again:
//! [`free_slots`]). An attempt answered 429 (or 503 with `Retry-After`) pauses its
//! endpoint and goes back to the front of its ready queue unrecorded, up to
//! [`MAX_REFUSALS_HELD`] times; after that it is recorded as a failed attempt, so an
//! endpoint that answers nothing else still fails, retries and is disabled as usual.
//! Finished attempts go to the writer; the scheduler forgets an entry only once the
//! writer says its result is committed, so nothing is sent twice while it runs, and a
//! crash re-runs what was in flight.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::born_jobs::BornJobs;
use super::flow::{BOARD_EVERY_MS, Flow, FlowBoard, Held};
use super::listeners::Listeners;
use super::messages::{Inbox, PingRequest, RETRY_DELAY, SchedulerMsg, To, WorkItem, WriteJob};
use crate::clock::Clock;
use crate::ids::{AppId, DeliveryId, EndpointId};
use crate::metrics::{HoldReason, Metrics};
use crate::store::QueueWrites;
use crate::store::model::{
    AttemptResult, AttemptStatus, Born, DueEntry, EndpointRecord, EndpointStatus, FlowState, HoldKind, Job, QueueKey,
    Scheduled, StoreError,
};

/// How far ahead of now queue entries are loaded into memory, in ms.
const NEAR_WINDOW_MS: u64 = 1_000;

/// The most queue entries held in memory (timer map, ready queues and in flight).
const MAX_LOADED: usize = 20_000;

/// The most entries of one endpoint held in memory, so one endpoint's backlog cannot fill
/// the window and starve the others.
const MAX_LOADED_PER_ENDPOINT: usize = 5_000;

/// How long after its last look at the queue the scheduler looks again when another
/// process queued entries, in ms. The process that queued them was told at once and
/// usually claims them itself, so the others need not race it for each one: their
/// looks are gathered, at most one per this delay (what they then find, a retry due
/// later or an entry handed to them, waits at most this long).
const HEARD_DELAY_MS: u64 = 20;

/// How many times in a row one attempt refused (429, or 503 with `Retry-After`) goes back
/// to its queue without being recorded; the next refusal is recorded as a failed attempt.
pub(super) const MAX_REFUSALS_HELD: u32 = 5;

/// The longest the scheduler sleeps without looking at the queue, as a safety net.
pub(super) const MAX_IDLE: Duration = Duration::from_secs(1);

/// Bounds on the queue entries held in memory.
#[derive(Debug, Clone, Copy)]
struct LoadLimits {
    /// In all.
    total: usize,
    /// For one endpoint.
    per_endpoint: usize,
}

/// The scheduler's state; owned by its task.
pub(super) struct Scheduler {
    store: QueueWrites,
    /// Which listener endpoints have a CLI connected (the others' attempts wait).
    listeners: Arc<Listeners>,
    clock: Clock,
    work: tokio::sync::mpsc::UnboundedSender<WorkItem>,
    workers: usize,
    /// Each endpoint's holds: in flight, rate, pause.
    flow: Flow,
    /// Where the API reads what `flow` holds back.
    board: FlowBoard,
    /// When the board is next shown (Unix ms; 0: on the next pass).
    board_due_ms: u64,
    /// The entries of the attempts in flight, to put back one its endpoint refused.
    sending: HashMap<DeliveryId, DueEntry>,
    /// How many times each held attempt was refused in a row.
    refusals: HashMap<DeliveryId, u32>,
    /// When the earliest hold on a ready entry ends by itself (Unix ms).
    held_until: Option<u64>,
    /// A dispatch pass learned an endpoint's limits with entries still waiting: go again.
    redispatch: bool,
    /// Counts refusals and shows what is held.
    metrics: Arc<Metrics>,
    /// Whether the last dispatch pass held any entry back (so the next sets the gauges
    /// even if it holds none).
    held_any: bool,
    /// Attempts in flight per application (the pool's share of each; test pings aside).
    app_in_flight: HashMap<AppId, usize>,
    /// On a shared queue, the endpoints this process sends to (each endpoint's flow is
    /// kept by one process: `store.send_for`), until when it may go on without renewing.
    sending_to: HashMap<EndpointId, std::time::Instant>,
    /// Every queue key up to here has been looked at.
    cursor: Option<QueueKey>,
    /// Look again from just after here before going on from `cursor`.
    rescan_after: Option<Option<QueueKey>>,
    /// Attempts in memory (timer, ready, or in flight).
    loaded: HashSet<DeliveryId>,
    /// Loaded entries per endpoint.
    loaded_per_endpoint: HashMap<EndpointId, usize>,
    /// The first key skipped per endpoint because it had too many loaded.
    skipped: HashMap<EndpointId, QueueKey>,
    /// Loaded entries not yet due: the timer.
    timer: BTreeMap<QueueKey, DueEntry>,
    /// Due entries waiting for their endpoint's flow to allow a start.
    ready: HashMap<EndpointId, VecDeque<DueEntry>>,
    /// Attempts in flight in all.
    busy: usize,
    /// Test pings waiting for a slot, oldest first. They go before ready entries of their
    /// endpoint: a person is waiting for each.
    pings: VecDeque<PingRequest>,
    /// Test pings in flight in all: at most [`max_pings`]`(workers)`, beside the pool of
    /// `workers` (not out of it, so pings to stalling endpoints cannot starve deliveries).
    pings_in_flight: usize,
    /// How many entries memory may hold.
    limits: LoadLimits,
    /// Where finished attempts go to be recorded.
    writer: To<WriteJob>,
    /// Finished attempts not yet recorded.
    unrecorded: usize,
    /// When the queue must be read again even if nothing signalled a new entry: the next
    /// unloaded entry enters the near window then (0: read on every pass).
    next_scan_ms: u64,
    /// When the queue was last read.
    last_scan_ms: u64,
    /// When the claims on the loaded entries were last renewed (a shared queue only).
    renewed: std::time::Instant,
    /// The jobs of loaded born entries ([`Born`]): sent as they are while fresh, read
    /// again from the store if later.
    born_jobs: BornJobs,
    /// Born entries that were not loaded: their claims are let go on the next pass, so the
    /// queue's next read (or another process) finds them.
    unborn: Vec<DeliveryId>,
    stopping: bool,
}

impl Scheduler {
    /// A scheduler over `store`'s queue that hands attempts to `work` and results to
    /// `writer`, keeping at most `workers` in flight, and each endpoint within `flow`.
    pub(super) fn new(
        store: QueueWrites,
        clock: Clock,
        work: tokio::sync::mpsc::UnboundedSender<WorkItem>,
        writer: To<WriteJob>,
        (workers, flow): (usize, Flow),
        listeners: Arc<Listeners>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            listeners,
            clock,
            work,
            workers,
            flow,
            board: FlowBoard::default(),
            board_due_ms: 0,
            sending: HashMap::new(),
            refusals: HashMap::new(),
            held_until: None,
            redispatch: false,
            metrics,
            held_any: false,
            sending_to: HashMap::new(),
            app_in_flight: HashMap::new(),
            cursor: None,
            rescan_after: None,
            loaded: HashSet::new(),
            loaded_per_endpoint: HashMap::new(),
            skipped: HashMap::new(),
            timer: BTreeMap::new(),
            ready: HashMap::new(),
            busy: 0,
            pings: VecDeque::new(),
            pings_in_flight: 0,
            limits: LoadLimits { total: MAX_LOADED, per_endpoint: MAX_LOADED_PER_ENDPOINT },
            writer,
            unrecorded: 0,
            next_scan_ms: 0,
            last_scan_ms: 0,
            renewed: std::time::Instant::now(),
            born_jobs: BornJobs::default(),
            unborn: Vec::new(),
            stopping: false,
        }
    }

    /// Where the API reads each endpoint's flow as this scheduler shows it.
    pub(super) fn board(&self) -> FlowBoard {
        self.board.clone()
    }

    /// Runs until told to stop (or every sender is gone) and what is in flight is recorded.
    pub(super) async fn run(mut self, mut inbox: Inbox<SchedulerMsg>) {
        let mut wait = Duration::ZERO;
        loop {
            match tokio::time::timeout(wait, inbox.recv()).await {
                Ok(Some(msg)) => self.handle(msg),
                Ok(None) => self.stopping = true,
                Err(_) => {}
            }
            while let Ok(msg) = inbox.try_recv() {
                self.handle(msg);
            }
            self.renew_claims().await;
            if self.stopping {
                // Done once what is in flight is recorded, or at once when the senders
                // are gone (the engine was dropped without a shutdown: nothing in flight
                // will answer, and it is sent again at the next start).
                if self.busy == 0 && self.unrecorded == 0 || self.work.is_closed() {
                    break;
                }
                wait = MAX_IDLE;
                continue;
            }
            wait = match self.load_and_dispatch().await {
                Ok(wait) => wait,
                Err(err) => {
                    tracing::error!(error = %err, "the scheduler cannot read the queue; retrying");
                    RETRY_DELAY
                }
            };
        }
        // Another process may go on at once with what this one held.
        let held: Vec<DeliveryId> = self.loaded.iter().copied().collect();
        if let Err(err) = self.store.let_go(held).await {
            tracing::warn!(error = %err, "cannot give up this process's claims and sendership; they lapse with their lease");
        }
        tracing::debug!("scheduler stopped");
    }

    fn handle(&mut self, msg: SchedulerMsg) {
        match msg {
            SchedulerMsg::Scheduled(scheduled) => self.heard_of(scheduled),
            SchedulerMsg::Done(result) => {
                // The slot is free as soon as the request is over; the entry stays loaded
                // (so it is not sent again) until its result is committed.
                self.busy -= 1;
                self.flow.finished(result.endpoint);
                let entry = self.sending.remove(&result.attempt());
                if let Some(entry) = &entry {
                    self.app_finished(entry.app);
                }
                if refused(&result) {
                    self.flow.refused(result.endpoint, self.clock.now_ms(), result.retry_after);
                    self.show_pause_soon();
                    if let Some(entry) = entry
                        && self.hold_refused(entry)
                    {
                        self.metrics.refusals.inc();
                        return;
                    }
                } else if result.succeeded {
                    self.flow.accepted(result.endpoint);
                }
                self.refusals.remove(&result.attempt());
                self.unrecorded += 1;
                if self.writer.send(WriteJob::Result(*result)).is_err() {
                    tracing::error!("the writer stopped; results are lost until restart");
                }
            }
            SchedulerMsg::Recorded(done, scheduled) => {
                // Capacity came back: dispatch on this pass (the caller goes on to it).
                self.unrecorded -= done.len();
                for (attempt, endpoint) in done {
                    self.release(attempt, endpoint);
                }
                self.heard_of(scheduled);
            }
            SchedulerMsg::Tick => self.next_scan_ms = 0,
            SchedulerMsg::EndpointsChanged => self.born_jobs.clear(),
            SchedulerMsg::Heard => {
                self.next_scan_ms = self.next_scan_ms.min(self.last_scan_ms + HEARD_DELAY_MS);
            }
            // Stopping: the request is dropped, so its caller hears the engine stopped.
            SchedulerMsg::Ping(request) if !self.stopping => self.pings.push_back(request),
            SchedulerMsg::Ping(_) => {}
            SchedulerMsg::PingDone(endpoint) => {
                debug_assert!(self.pings_in_flight > 0, "a ping slot freed twice");
                self.pings_in_flight = self.pings_in_flight.saturating_sub(1);
                self.flow.finished(endpoint);
            }
            SchedulerMsg::Shutdown => {
                self.stopping = true;
                // Their callers hear that the engine is stopping.
                self.pings.clear();
            }
        }
    }

    /// On a queue other processes share, keeps this process's claims on the entries it
    /// holds (waiting, ready, in flight, unrecorded) from running out, so no other process
    /// makes those attempts while this one lives; and its hold on the listener endpoints
    /// it has a CLI for, so the others keep handing it their attempts.
    async fn renew_claims(&mut self) {
        let Some(every) = self.store.claim_renewal() else { return };
        if self.renewed.elapsed() < every {
            return;
        }
        let held: Vec<DeliveryId> = self.loaded.iter().copied().collect();
        let count = held.len();
        // The endpoints it still has attempts of keep their sender; the others lapse.
        let now = std::time::Instant::now();
        self.sending_to.retain(|endpoint, until| {
            *until > now && (self.loaded_per_endpoint.contains_key(endpoint) || self.flow.in_flight(*endpoint) > 0)
        });
        let now_ms = self.clock.now_ms();
        let sending: Vec<FlowState> = self.sending_to.keys().map(|endpoint| self.flow_of(*endpoint, now_ms)).collect();
        match self.store.renew_claims(held, self.listeners.connected(), sending).await {
            Ok(()) => {
                self.renewed = now;
                for until in self.sending_to.values_mut() {
                    *until = now + every * 2;
                }
                self.metrics.sending_to.set(self.sending_to.len() as i64);
            }
            Err(err) => tracing::warn!(error = %err, held = count, "cannot renew the claims on queued attempts"),
        }
    }

    /// An endpoint was paused: the board shows it on the next pass, and on a shared
    /// queue the next renewal (within a second) records it for the other processes.
    fn show_pause_soon(&mut self) {
        self.board_due_ms = 0;
        if let Some(every) = self.store.claim_renewal() {
            let soon = Duration::from_secs(1).min(every);
            if let Some(earlier) = std::time::Instant::now().checked_sub(every - soon) {
                self.renewed = self.renewed.min(earlier);
            }
        }
    }

    /// `endpoint`'s flow now, with what waits for it here.
    fn flow_of(&self, endpoint: EndpointId, now_ms: u64) -> FlowState {
        self.flow.state(endpoint, now_ms, self.ready.get(&endpoint).map_or(0, VecDeque::len))
    }

    /// Shows on the board the flow of each endpoint with something to show (deliveries
    /// waiting, requests in flight, a pause or a recovery), at most every
    /// [`BOARD_EVERY_MS`]. (On a shared queue a process has ready entries, requests in
    /// flight and pauses only of endpoints it sends to, or sent to last.)
    fn show_board(&mut self, now_ms: u64) {
        if now_ms < self.board_due_ms {
            return;
        }
        self.board_due_ms = now_ms + BOARD_EVERY_MS;
        let shown: HashMap<EndpointId, FlowState> = self
            .ready
            .keys()
            .copied()
            .chain(self.flow.active(now_ms))
            .map(|endpoint| (endpoint, self.flow_of(endpoint, now_ms)))
            .collect();
        self.board.show(shown);
    }

    /// New entries were queued: the born ones are loaded as they are, where memory and
    /// their endpoint's share allow and none of its older entries waits unloaded; the next
    /// pass reads the queue from the earliest of the others.
    fn heard_of(&mut self, mut scheduled: Scheduled) {
        let now_ms = self.clock.now_ms();
        let mut loaded_born = HashSet::new();
        for Born { entry, job } in scheduled.take_born() {
            let id = entry.key.attempt();
            let count = self.loaded_per_endpoint.get(&entry.endpoint).copied().unwrap_or(0);
            if self.loaded.contains(&id) {
                loaded_born.insert(id);
            } else if self.loaded.len() < self.limits.total
                && count < self.limits.per_endpoint
                && !self.skipped.contains_key(&entry.endpoint)
            {
                *self.loaded_per_endpoint.entry(entry.endpoint).or_default() += 1;
                self.loaded.insert(id);
                self.timer.insert(entry.key, entry);
                // One that does not fit in memory is read when its turn comes.
                self.born_jobs.keep(id, job, now_ms);
                loaded_born.insert(id);
            } else {
                self.unborn.push(id);
            }
        }
        let others = scheduled.keys().iter().filter(|key| !loaded_born.contains(&key.attempt()));
        if let Some(earliest) = others.min() {
            self.rescan_from(*earliest);
        }
    }

    /// Makes the next pass read the queue, starting at `key` (inclusive) if that is earlier
    /// than planned.
    fn rescan_from(&mut self, key: QueueKey) {
        self.next_scan_ms = 0;
        let after = key.just_before();
        let planned = self.rescan_after.unwrap_or(self.cursor);
        if after < planned {
            self.rescan_after = Some(after);
        }
    }

    /// Puts an attempt its endpoint refused back at the front of the
    /// endpoint's ready queue, unrecorded, unless it was refused [`MAX_REFUSALS_HELD`]
    /// times in a row already (then it is recorded: `false`).
    fn hold_refused(&mut self, entry: DueEntry) -> bool {
        let refusals = self.refusals.entry(entry.key.attempt()).or_default();
        *refusals += 1;
        if *refusals > MAX_REFUSALS_HELD {
            return false;
        }
        self.ready.entry(entry.endpoint).or_default().push_front(entry);
        true
    }

    /// Forgets an entry that left memory.
    fn release(&mut self, attempt: DeliveryId, endpoint: EndpointId) {
        self.loaded.remove(&attempt);
        self.born_jobs.forget(attempt);
        self.refusals.remove(&attempt);
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
            } else if remaining == self.limits.per_endpoint / 2 && self.store.is_shared() {
                // No longer stocked: what is set aside for it may be taken.
                self.next_scan_ms = 0;
            }
        }
    }

    /// The endpoints with enough entries in memory for now (more than half their share,
    /// or some left unloaded): a shared queue leaves what it set aside for them where it
    /// is, rather than claim it on every pass past the entries already held. (None on
    /// one process's store, which reads past them by its cursor.)
    fn stocked(&self) -> Vec<EndpointId> {
        // One process's queue is scanned by its cursor: nothing is set aside.
        if !self.store.is_shared() {
            return Vec::new();
        }
        let half = self.limits.per_endpoint / 2;
        let held = self.loaded_per_endpoint.iter().filter(|(_, n)| **n > half).map(|(e, _)| *e);
        let mut stocked: Vec<EndpointId> = self.skipped.keys().copied().chain(held).collect();
        stocked.sort_unstable();
        stocked.dedup();
        stocked
    }

    /// Loads due entries from the queue, moves due ones to the ready queues, dispatches
    /// what capacity allows, and says how long to wait before looking again.
    async fn load_and_dispatch(&mut self) -> Result<Duration, StoreError> {
        let waited = match self.let_go_unborn().await {
            Ok(()) => self.dispatch_loaded().await,
            Err(err) => Err(err),
        };
        self.born_jobs.expire(self.clock.now_ms());
        waited
    }

    /// Gives back the claims on born entries that were not loaded; kept for the next pass
    /// if the store cannot take them now (until then they wait for their lease).
    async fn let_go_unborn(&mut self) -> Result<(), StoreError> {
        if self.unborn.is_empty() {
            return Ok(());
        }
        let unborn = std::mem::take(&mut self.unborn);
        if let Err(err) = self.store.release_claims(unborn.clone()).await {
            self.unborn = unborn;
            return Err(err);
        }
        Ok(())
    }

    /// [`Scheduler::load_and_dispatch`], but for expiring the born jobs kept.
    async fn dispatch_loaded(&mut self) -> Result<Duration, StoreError> {
        let now = self.clock.now_ms();
        // Every new entry is signalled (`rescan_from`), so between signals the queue is read
        // only when its next unloaded entry comes into the near window: a pass that only
        // handled results costs no queue scan.
        let scan = now >= self.next_scan_ms;
        if scan {
            self.last_scan_ms = now;
            self.load(now).await?;
        }
        while let Some(entry) = self.timer.first_entry() {
            if entry.key().due_ms() > now {
                break;
            }
            let due = entry.remove();
            self.ready.entry(due.endpoint).or_default().push_back(due);
        }
        self.dispatch().await?;

        if self.redispatch || self.rescan_after.is_some() && self.loaded.len() < self.limits.total {
            self.redispatch = false;
            return Ok(Duration::ZERO);
        }
        if scan {
            self.next_scan_ms = if self.loaded.len() >= self.limits.total {
                // Memory is full: look again as soon as results free room.
                0
            } else {
                // Entries not signalled (none are known) are still found within MAX_IDLE.
                let safety_net = now + MAX_IDLE.as_millis() as u64;
                match self.store.next_due_after(self.cursor, self.stocked()).await? {
                    Some(due) => due.saturating_sub(NEAR_WINDOW_MS).min(safety_net),
                    None => safety_net,
                }
            };
        }
        // Wake when the first loaded entry is due, or when the next unloaded one enters
        // the near window; results and new entries wake the loop anyway.
        // While memory is full only results (which wake the loop) make room.
        let scan_at = if self.loaded.len() >= self.limits.total { u64::MAX } else { self.next_scan_ms };
        // And when the first hold on a ready entry ends (a rate's next start, a pause's end).
        let wake_at = self.timer.first_key_value().map_or(scan_at, |(k, _)| k.due_ms().min(scan_at));
        let wake_at = self.held_until.map_or(wake_at, |held| held.min(wake_at));
        let now = self.clock.now_ms();
        Ok(Duration::from_millis(wake_at.saturating_sub(now)).min(MAX_IDLE))
    }

    async fn load(&mut self, now: u64) -> Result<(), StoreError> {
        let room = self.limits.total.saturating_sub(self.loaded.len());
        if room == 0 {
            return Ok(());
        }
        let rescanning = self.rescan_after.is_some();
        let start = self.rescan_after.take().unwrap_or(self.cursor);
        let entries = self.store.due_entries(start, now + NEAR_WINDOW_MS, room, self.stocked()).await?;
        let full = entries.len() >= room;
        let last = entries.last().map(|e| e.key);
        let mut not_loaded = Vec::new();
        for entry in entries {
            let id = entry.key.attempt();
            if self.loaded.contains(&id) {
                continue;
            }
            let count = self.loaded_per_endpoint.entry(entry.endpoint).or_default();
            if *count >= self.limits.per_endpoint {
                let first = self.skipped.entry(entry.endpoint).or_insert(entry.key);
                *first = (*first).min(entry.key);
                not_loaded.push(id);
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
        // On a shared queue, what was claimed but not loaded is left to be claimed again.
        if !not_loaded.is_empty() {
            self.store.release_claims(not_loaded).await?;
        }
        Ok(())
    }

    /// Takes back an entry chosen for dispatch that will not be sent: frees its endpoint
    /// slot and forgets it.
    fn undispatch(&mut self, entry: &DueEntry) {
        self.flow.finished(entry.endpoint);
        self.app_finished(entry.app);
        self.release(entry.key.attempt(), entry.endpoint);
    }

    /// Gives waiting test pings the starts their endpoints' flows allow, oldest first,
    /// while fewer than [`max_pings`] are in flight; drops those whose caller stopped
    /// waiting.
    fn grant_pings(&mut self, now_ms: u64) {
        if self.pings.is_empty() {
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some(request) = self.pings.pop_front() {
            if request.reply.is_closed() {
                continue;
            }
            if self.pings_in_flight >= max_pings(self.workers) {
                waiting.push_back(request);
                continue;
            }
            if let Err(held) = self.flow.start(request.slot.endpoint, now_ms) {
                self.note_hold(held);
                waiting.push_back(request);
                continue;
            }
            self.pings_in_flight += 1;
            // A grant that cannot be delivered comes straight back as `PingDone`.
            let _ = request.reply.send(request.slot.grant());
        }
        self.pings = waiting;
    }

    /// Sets the held-deliveries gauges from this pass's holds (entries waiting, by
    /// reason); a pass that holds nothing after one that held some zeroes them.
    fn show_holds(&mut self, holds: &[(Held, usize)]) {
        if holds.is_empty() && !self.held_any {
            return;
        }
        self.held_any = !holds.is_empty();
        for kind in HoldKind::ALL {
            let waiting: usize = holds.iter().filter(|(h, _)| h.kind() == kind).map(|(_, n)| n).sum();
            self.metrics.held.get_or_create(&HoldReason { reason: kind.as_str() }).set(waiting as i64);
        }
    }

    /// Takes up to `free` ready entries that their endpoints' flows allow now, sharing
    /// the pool between applications: in rounds, one entry per application per round,
    /// the applications with the fewest attempts in flight first, and within an
    /// application its endpoints in turn. So an application with a backlog to many
    /// endpoints takes no more of the pool than its turn while another has entries
    /// ready. Notes what holds the rest.
    fn choose(&mut self, mut free: usize, now: u64) -> Vec<DueEntry> {
        let mut chosen = Vec::new();
        let mut by_app: HashMap<AppId, VecDeque<EndpointId>> = HashMap::new();
        for (endpoint, queue) in &self.ready {
            if let Some(first) = queue.front() {
                by_app.entry(first.app).or_default().push_back(*endpoint);
            }
        }
        let mut turn: Vec<(usize, AppId, VecDeque<EndpointId>)> = by_app
            .into_iter()
            .map(|(app, endpoints)| (self.app_in_flight.get(&app).copied().unwrap_or(0), app, endpoints))
            .collect();
        if turn.len() > 1 {
            turn.sort_unstable_by_key(|(load, app, _)| (*load, *app));
        }
        let mut holds = Vec::new();
        while free > 0 && !turn.is_empty() {
            for (_, _, endpoints) in turn.iter_mut() {
                if free == 0 {
                    break;
                }
                // The application's next endpoint that may start: one entry from it.
                while let Some(endpoint) = endpoints.pop_front() {
                    let Some(queue) = self.ready.get_mut(&endpoint) else { continue };
                    match self.flow.start(endpoint, now) {
                        Ok(()) => {
                            let Some(entry) = queue.pop_front() else { continue };
                            *self.app_in_flight.entry(entry.app).or_default() += 1;
                            chosen.push(entry);
                            free -= 1;
                            if !queue.is_empty() {
                                endpoints.push_back(endpoint);
                            }
                            break;
                        }
                        Err(held) => holds.push((held, queue.len())),
                    }
                }
            }
            turn.retain(|(_, _, endpoints)| !endpoints.is_empty());
        }
        self.show_holds(&holds);
        for (held, _) in holds {
            self.note_hold(held);
        }
        self.ready.retain(|_, q| !q.is_empty());
        chosen
    }

    /// An attempt of `app` left the pool (answered, put back or not sent).
    fn app_finished(&mut self, app: AppId) {
        if let Some(n) = self.app_in_flight.get_mut(&app) {
            *n -= 1;
            if *n == 0 {
                self.app_in_flight.remove(&app);
            }
        }
    }

    /// Keeps the earliest time a hold ends by itself, to wake then.
    fn note_hold(&mut self, held: Held) {
        if let Some(at) = held.until_ms() {
            self.held_until = Some(self.held_until.map_or(at, |t| t.min(at)));
        }
    }

    /// On a shared queue, makes this process the sender of the endpoints it has ready
    /// entries for, or hands those entries to the process that is (and forgets them).
    /// Listener endpoints with their CLI here need no sendership: their attempts come
    /// here from every process (`park.rs`).
    async fn send_or_hand_over(&mut self) -> Result<(), StoreError> {
        let Some(every) = self.store.claim_renewal() else { return Ok(()) };
        let now = std::time::Instant::now();
        let wanted: Vec<(EndpointId, Vec<DeliveryId>)> = self
            .ready
            .iter()
            .filter(|(endpoint, _)| self.sending_to.get(endpoint).is_none_or(|until| *until <= now))
            // A listener endpoint whose CLI is connected here is sent to from here only:
            // the other processes hand its attempts to this one already. (Asked second:
            // it takes the listeners' lock.)
            .filter(|(endpoint, _)| !self.listeners.is_connected(**endpoint))
            .map(|(endpoint, queue)| (*endpoint, queue.iter().map(|e| e.key.attempt()).collect()))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let endpoints: Vec<EndpointId> = wanted.iter().map(|(endpoint, _)| *endpoint).collect();
        let mine: HashMap<EndpointId, Option<u64>> = self.store.send_for(wanted).await?.into_iter().collect();
        let now_ms = self.clock.now_ms();
        for endpoint in endpoints {
            if let Some(paused_until) = mine.get(&endpoint) {
                // Within two renewals: the lease is three.
                self.sending_to.insert(endpoint, now + every * 2);
                // Taken over from a sender that paused it: the pause holds here too.
                if let Some(until) = *paused_until {
                    self.flow.resume_pause(endpoint, until, now_ms);
                }
            } else if let Some(handed) = self.ready.remove(&endpoint) {
                for entry in handed {
                    self.release(entry.key.attempt(), endpoint);
                }
            }
        }
        self.metrics.sending_to.set(self.sending_to.len() as i64);
        Ok(())
    }

    /// The jobs of `chosen`, in order: those born from their birth, the others read in one
    /// snapshot.
    async fn jobs_of(&mut self, chosen: &[DueEntry]) -> Result<Vec<Option<Job>>, StoreError> {
        let now_ms = self.clock.now_ms();
        let mut jobs: Vec<Option<Job>> = chosen.iter().map(|e| self.born_jobs.take(e.key.attempt(), now_ms)).collect();
        let unread: Vec<DeliveryId> =
            chosen.iter().zip(&jobs).filter(|(_, job)| job.is_none()).map(|(e, _)| e.key.attempt()).collect();
        if unread.is_empty() {
            return Ok(jobs);
        }
        let mut read = self.store.jobs(unread).await?.into_iter();
        for job in jobs.iter_mut().filter(|job| job.is_none()) {
            *job = read.next().flatten();
        }
        Ok(jobs)
    }

    /// Hands ready entries to the delivery runtime, within the pool and each endpoint's
    /// flow.
    async fn dispatch(&mut self) -> Result<(), StoreError> {
        self.send_or_hand_over().await?;
        let now = self.clock.now_ms();
        self.held_until = None;
        self.grant_pings(now);
        let free = free_slots(self.workers, self.busy, self.unrecorded);
        let chosen = self.choose(free, now);
        self.show_board(now);
        self.flow.trim(now);
        if chosen.is_empty() {
            return Ok(());
        }
        let jobs = match self.jobs_of(&chosen).await {
            Ok(jobs) => jobs,
            Err(err) => {
                // Put them back and try later.
                for entry in chosen.into_iter().rev() {
                    self.flow.finished(entry.endpoint);
                    self.app_finished(entry.app);
                    self.ready.entry(entry.endpoint).or_default().push_front(entry);
                }
                return Err(err);
            }
        };
        let mut parked = Vec::new();
        // Endpoints whose limits changed since they were chosen by the old ones.
        let mut relimited = HashSet::new();
        let mut put_back = Vec::new();
        for (entry, job) in chosen.into_iter().zip(jobs) {
            if relimited.contains(&entry.endpoint) {
                // Chosen by limits now changed (a rate limit set or lowered meanwhile): back
                // to the front of its line, to be chosen again by the new ones.
                self.flow.finished(entry.endpoint);
                self.app_finished(entry.app);
                put_back.push(entry);
                continue;
            }
            if let Some(endpoint) = job.as_ref().and_then(|j| j.endpoint.as_ref()) {
                let known = self.flow.knows(entry.endpoint);
                if self.flow.learn(entry.endpoint, endpoint.flow_limits()) {
                    relimited.insert(entry.endpoint);
                }
                // The first job of an endpoint brings its limits: the rest of its ready
                // entries may go at once.
                self.redispatch |= !known && self.ready.contains_key(&entry.endpoint);
            }
            let sendable = job.filter(|j| {
                j.attempt.status == AttemptStatus::Pending
                    && j.endpoint.as_ref().is_none_or(|e| deliverable(&self.listeners, e))
            });
            let Some(job) = sendable else {
                // Parked (disabled endpoint, or a listener endpoint no CLI is connected
                // for) or no longer pending: it leaves the queue.
                self.undispatch(&entry);
                parked.push(entry.key);
                continue;
            };
            self.busy += 1;
            if self.work.send(WorkItem { job, key: entry.key }).is_err() {
                self.busy -= 1;
                self.undispatch(&entry);
            } else {
                self.sending.insert(entry.key.attempt(), entry);
            }
        }
        for entry in put_back.into_iter().rev() {
            self.ready.entry(entry.endpoint).or_default().push_front(entry);
            self.redispatch = true;
        }
        if !parked.is_empty() {
            // Any left on the queue (their endpoint was enabled meanwhile) are looked at again.
            let listeners = Arc::clone(&self.listeners);
            let still_queued = self.store.park(parked, move |e| deliverable(&listeners, e)).await?;
            self.heard_of(still_queued);
        }
        Ok(())
    }
}

/// Whether an endpoint refused a request for now, a flow signal rather than the
/// delivery's failure: 429 Too Many Requests, or 503 Service Unavailable with a
/// `Retry-After`. A 503 without one is what a server that is down answers through its
/// proxy: an ordinary failure, retried on the schedule and counted against its health.
fn refused(result: &AttemptResult) -> bool {
    !result.succeeded
        && match result.response_status {
            Some(429) => true,
            Some(503) => result.retry_after.is_some(),
            _ => false,
        }
}

/// How many attempts may start now: fewer than `workers` requests are in flight, and
/// finished attempts whose results the writer has not committed yet hold up to `workers`
/// slots more. Those are what a crash would repeat, so at most twice `workers` ever are;
/// and the next requests go out while the writer commits the last results. When results
/// held slots of the pool itself, a result waited about a commit and a half, longer than
/// its request took, and a fan-out to ten endpoints (W2) went 3 to 18% slower
/// (docs/benchmarks.md).
fn free_slots(workers: usize, busy: usize, unrecorded: usize) -> usize {
    let within_the_unrecorded_bound = (2 * workers).saturating_sub(busy + unrecorded);
    workers.saturating_sub(busy).min(within_the_unrecorded_bound)
}

/// The most test pings in flight at once, whatever their endpoints: a quarter of the
/// delivery pool, at least one.
fn max_pings(workers: usize) -> usize {
    (workers / 4).max(1)
}

/// Whether attempts to `endpoint` may be made now: it is enabled and, for a listener
/// endpoint, a CLI is connected.
fn deliverable(listeners: &Listeners, endpoint: &EndpointRecord) -> bool {
    endpoint.status == EndpointStatus::Enabled && (!endpoint.is_listener() || listeners.is_connected(endpoint.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::store::Store;
    use crate::store::model::EndpointRecord;
    use crate::store::model::NewEvent;

    const START_MS: u64 = 1_800_000_000_000;

    async fn endpoint(store: &QueueWrites, event_type: &str) -> EndpointId {
        let record = EndpointRecord::for_test(store.test_owner(Mode::Test).await, "http://127.0.0.1:9/", event_type);
        store.insert_endpoint(record.clone()).await.unwrap();
        record.id
    }

    async fn publish(store: &QueueWrites, event_type: &str, n: usize, now_ms: u64) -> Scheduled {
        let owner = store.test_owner(Mode::Test).await;
        let events: Vec<NewEvent> = (0..n)
            .map(|_| {
                crate::payload::new_event(owner, event_type, &serde_json::json!({}), crate::clock::unix_now_ms())
                    .unwrap()
            })
            .collect();
        store.publish_events(events, now_ms).await.unwrap().1
    }

    /// Flow state with `per_endpoint` requests at once for endpoints without their own.
    fn flow(per_endpoint: usize) -> Flow {
        Flow::new(per_endpoint, Duration::from_secs(60))
    }

    fn loaded_for(scheduler: &Scheduler, endpoint: EndpointId) -> usize {
        scheduler.timer.values().filter(|e| e.endpoint == endpoint).count()
    }

    fn scheduler(store: &QueueWrites, clock: &Clock) -> Scheduler {
        let (work, _work_rx) = tokio::sync::mpsc::unbounded_channel();
        let (writer, _writer_rx) = tokio::sync::mpsc::unbounded_channel();
        Scheduler::new(store.clone(), clock.clone(), work, writer, (0, flow(1)), Arc::default(), Arc::default())
    }

    #[tokio::test]
    async fn one_endpoints_backlog_cannot_fill_memory_and_is_reloaded_as_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        let clock = Clock::manual(START_MS);
        let busy = endpoint(&store, "a.x").await;
        let other = endpoint(&store, "b.x").await;
        let _ = publish(&store, "a.x", 50, START_MS - 10).await;
        let _ = publish(&store, "b.x", 10, START_MS - 5).await;

        let mut scheduler = scheduler(&store, &clock);
        scheduler.limits = LoadLimits { total: 30, per_endpoint: 20 };

        // The busy endpoint's 50 entries come first in the queue; the other's 10 still
        // get loaded within a few passes, and memory never holds more than the limits.
        for _ in 0..10 {
            scheduler.load(clock.now_ms()).await.unwrap();
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
            scheduler.release(key.attempt(), busy);
            store.drop_queue_entry_for_test(*key).await;
        }
        scheduler.load(clock.now_ms()).await.unwrap();
        assert_eq!(loaded_for(&scheduler, busy), 20, "refilled from the skipped entries");
        let mut seen: Vec<DeliveryId> = scheduler.timer.keys().map(|k| k.attempt()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), scheduler.timer.len(), "no entry loaded twice");
    }

    #[tokio::test]
    async fn born_entries_load_with_their_jobs_and_those_that_do_not_fit_are_let_go_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        store.bear_births();
        let clock = Clock::manual(START_MS);
        let target = endpoint(&store, "a.x").await;
        let mut scheduler = scheduler(&store, &clock);
        scheduler.limits = LoadLimits { total: 30, per_endpoint: 2 };
        scheduler.cursor = Some(QueueKey::new(START_MS, DeliveryId(u128::MAX)));
        let scheduled = publish(&store, "a.x", 3, START_MS - 10).await;
        let keys = scheduled.keys().to_vec();
        scheduler.heard_of(scheduled);
        // Two fit the endpoint's share and come with their jobs; the third is let go and
        // looked for on the queue from its key.
        assert_eq!(loaded_for(&scheduler, target), 2);
        assert_eq!(scheduler.born_jobs.len(), 2);
        assert_eq!(scheduler.unborn, [keys[2].attempt()]);
        // Kept past the end of a pass while loaded and fresh.
        scheduler.born_jobs.expire(clock.now_ms());
        assert_eq!(scheduler.born_jobs.len(), 2);
        assert_eq!(scheduler.rescan_after, Some(keys[2].just_before()));
        // Jobs come in the order asked, born or read: the one not loaded is read back.
        let app = store.test_owner(Mode::Test).await.app;
        let entries: Vec<DueEntry> =
            [2, 0, 1].iter().map(|&n| DueEntry { key: keys[n], endpoint: target, app }).collect();
        let jobs = scheduler.jobs_of(&entries).await.unwrap();
        let ids: Vec<DeliveryId> = jobs.iter().map(|j| j.as_ref().unwrap().attempt.id).collect();
        assert_eq!(ids, [keys[2].attempt(), keys[0].attempt(), keys[1].attempt()]);
        assert_eq!(scheduler.born_jobs.len(), 0, "a born job is used once");
        // The engine's endpoint changes drop what is kept.
        let later = publish(&store, "a.x", 1, START_MS - 5).await;
        scheduler.timer.remove(&keys[1]);
        scheduler.release(keys[1].attempt(), target);
        scheduler.heard_of(later);
        assert_eq!(scheduler.born_jobs.len(), 1);
        scheduler.handle(SchedulerMsg::EndpointsChanged);
        assert_eq!(scheduler.born_jobs.len(), 0, "dropped: read again when sent");
        // Once the endpoint has room, the next read of the queue loads the third.
        scheduler.timer.remove(&keys[0]);
        scheduler.release(keys[0].attempt(), target);
        scheduler.load(clock.now_ms()).await.unwrap();
        assert!(scheduler.timer.contains_key(&keys[2]), "found from the rescan position");
    }

    #[tokio::test]
    async fn entries_scheduled_behind_the_scan_position_are_found_once_heard_of() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        let clock = Clock::manual(START_MS);
        let target = endpoint(&store, "a.x").await;
        let mut scheduler = scheduler(&store, &clock);
        let _ = publish(&store, "a.x", 1, START_MS + 500).await;
        scheduler.load(clock.now_ms()).await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 1);
        // An entry due earlier than the one the cursor has passed: the scan position is
        // past it, so only the engine's word about it brings it in (every engine write
        // that queues an attempt sends it).
        let earlier = publish(&store, "a.x", 1, START_MS - 1_000).await;
        scheduler.load(clock.now_ms()).await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 1, "behind the cursor, not seen by itself");
        scheduler.handle(SchedulerMsg::Scheduled(earlier));
        scheduler.load(clock.now_ms()).await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 2);
    }

    #[tokio::test]
    async fn word_from_another_process_is_looked_at_soon_with_the_looks_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        let clock = Clock::manual(START_MS);
        let target = endpoint(&store, "a.x").await;
        let mut scheduler = scheduler(&store, &clock);
        scheduler.load_and_dispatch().await.unwrap();
        // Queued behind the scheduler's back (as by another process on a shared queue).
        let _ = publish(&store, "a.x", 1, START_MS - 1).await;
        scheduler.handle(SchedulerMsg::Heard);
        scheduler.handle(SchedulerMsg::Heard);
        let wait = scheduler.load_and_dispatch().await.unwrap();
        assert_eq!(wait, Duration::from_millis(HEARD_DELAY_MS), "one look, a moment after the last");
        clock.advance(Duration::from_millis(HEARD_DELAY_MS));
        scheduler.load_and_dispatch().await.unwrap();
        assert_eq!(scheduler.ready.get(&target).map_or(0, VecDeque::len), 1, "found on that look");
    }

    #[tokio::test]
    async fn entries_load_when_the_clock_brings_them_into_the_near_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().into_shared().1;
        let clock = Clock::manual(START_MS);
        let target = endpoint(&store, "a.x").await;
        let mut scheduler = scheduler(&store, &clock);
        let _ = publish(&store, "a.x", 1, START_MS + 60_000).await;
        let wait = scheduler.load_and_dispatch().await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 0, "a minute away: not in memory");
        assert!(wait <= MAX_IDLE);
        clock.advance(Duration::from_secs(59));
        scheduler.handle(SchedulerMsg::Tick);
        scheduler.load_and_dispatch().await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 1, "within the near window now");
        clock.advance(Duration::from_secs(1));
        scheduler.load_and_dispatch().await.unwrap();
        assert_eq!(loaded_for(&scheduler, target), 0, "due: moved from the timer to the ready queue");
        assert_eq!(scheduler.ready.get(&target).map_or(0, VecDeque::len), 1, "no worker free to take it");
    }

    #[test]
    fn the_pool_goes_round_the_applications_not_their_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = Store::open(dir.path()).unwrap().into_shared();
        let (work, _work_rx) = tokio::sync::mpsc::unbounded_channel();
        let (writer, _writer_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut scheduler =
            Scheduler::new(store, Clock::manual(START_MS), work, writer, (6, flow(8)), Arc::default(), Arc::default());
        let (busy_app, quiet_app) = (AppId(1), AppId(2));
        let busy: Vec<EndpointId> = (0..4).map(|_| EndpointId::new()).collect();
        let quiet = EndpointId::new();
        let mut ready = |app: AppId, endpoint: EndpointId, n: u64| {
            scheduler.flow.learn(endpoint, crate::store::model::FlowLimits::default());
            let queue = scheduler.ready.entry(endpoint).or_default();
            for i in 0..n {
                queue.push_back(DueEntry { key: QueueKey::new(START_MS + i, DeliveryId::new()), endpoint, app });
            }
        };
        for endpoint in &busy {
            ready(busy_app, *endpoint, 50);
        }
        ready(quiet_app, quiet, 5);
        let share = |chosen: &[DueEntry], app: AppId| chosen.iter().filter(|e| e.app == app).count();

        // Six slots, two applications with entries ready: three each, though the busy one
        // has four endpoints to the quiet one's one.
        let chosen = scheduler.choose(6, START_MS);
        assert_eq!((share(&chosen, busy_app), share(&chosen, quiet_app)), (3, 3));
        let spread: std::collections::HashSet<EndpointId> =
            chosen.iter().filter(|e| e.app == busy_app).map(|e| e.endpoint).collect();
        assert_eq!(spread.len(), 3, "the busy application's share goes round its endpoints");
        // Two of the quiet one's end: the next slot is the quiet one's, with fewer in
        // flight, though the busy one comes first in the order of ids.
        for entry in chosen.iter().filter(|e| e.app == quiet_app).take(2) {
            scheduler.flow.finished(entry.endpoint);
            scheduler.app_finished(entry.app);
        }
        let chosen = scheduler.choose(1, START_MS);
        assert_eq!((share(&chosen, busy_app), share(&chosen, quiet_app)), (0, 1));
        // Two more slots: one each (the quiet one has one entry left).
        let chosen = scheduler.choose(2, START_MS);
        assert_eq!((share(&chosen, busy_app), share(&chosen, quiet_app)), (1, 1));
        assert!(!scheduler.ready.contains_key(&quiet), "the quiet one is done");
    }

    #[test]
    fn results_waiting_for_their_commit_hold_a_second_pool_not_the_requests_one() {
        // Nothing waiting: the pool is the requests'.
        assert_eq!(free_slots(64, 0, 0), 64);
        assert_eq!(free_slots(64, 60, 0), 4);
        // Results waiting for the writer do not hold requests back, up to a pool's worth.
        assert_eq!(free_slots(64, 0, 64), 64);
        assert_eq!(free_slots(64, 10, 40), 54);
        // Past it they do: requests in flight and results unrecorded stay within twice
        // the pool, all that a crash could repeat.
        assert_eq!(free_slots(64, 10, 100), 18);
        assert_eq!(free_slots(64, 0, 128), 0);
        assert_eq!(free_slots(64, 64, 0), 0);
        assert_eq!(free_slots(64, 70, 100), 0, "never less than none");
    }

    /// A ping request for `endpoint` whose slot reports to `inbox`'s sender.
    fn ping(
        endpoint: EndpointId,
        to_scheduler: &To<SchedulerMsg>,
    ) -> (PingRequest, tokio::sync::oneshot::Receiver<super::super::messages::PingSlot>) {
        let (reply, granted) = tokio::sync::oneshot::channel();
        (PingRequest { slot: super::super::messages::PingSlot::new(endpoint, to_scheduler.clone()), reply }, granted)
    }

    #[test]
    fn pings_take_their_endpoints_slots_within_their_own_bound_and_give_them_back_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = Store::open(dir.path()).unwrap().into_shared();
        let clock = Clock::manual(START_MS);
        // One slot per endpoint, a pool of 8 workers: at most 2 pings at once.
        let (work, _work_rx) = tokio::sync::mpsc::unbounded_channel();
        let (writer, _writer_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut scheduler = Scheduler::new(store, clock, work, writer, (8, flow(1)), Arc::default(), Arc::default());
        let (to_scheduler, mut inbox) = tokio::sync::mpsc::unbounded_channel();
        let (x, y, z) = (EndpointId::new(), EndpointId::new(), EndpointId::new());

        let (first, mut first_granted) = ping(x, &to_scheduler);
        let (second, mut second_granted) = ping(x, &to_scheduler);
        let (gone, gone_granted) = ping(y, &to_scheduler);
        drop(gone_granted);
        let (other, mut other_granted) = ping(y, &to_scheduler);
        let (third, mut third_granted) = ping(z, &to_scheduler);
        for request in [first, second, gone, other, third] {
            scheduler.handle(SchedulerMsg::Ping(request));
        }
        scheduler.grant_pings(START_MS);
        let first_slot = first_granted.try_recv().expect("x had a free slot");
        assert!(second_granted.try_recv().is_err(), "x's one slot is taken");
        let other_slot = other_granted.try_recv().expect("y had a free slot (its abandoned request was dropped)");
        assert!(third_granted.try_recv().is_err(), "two pings are in flight: the bound for 8 workers");
        assert_eq!(scheduler.pings_in_flight, 2);
        assert_eq!(scheduler.busy, 0, "pings do not take the delivery pool");

        // A finished ping gives its endpoint's slot back, and the next in line gets it.
        drop(first_slot);
        while let Ok(msg) = inbox.try_recv() {
            scheduler.handle(msg);
        }
        scheduler.grant_pings(START_MS);
        let second_slot = second_granted.try_recv().expect("x's slot came back");
        assert!(third_granted.try_recv().is_err(), "still two in flight");
        drop((second_slot, other_slot));
        while let Ok(msg) = inbox.try_recv() {
            scheduler.handle(msg);
        }
        scheduler.grant_pings(START_MS);
        drop(third_granted.try_recv().expect("room at last"));
        while let Ok(msg) = inbox.try_recv() {
            scheduler.handle(msg);
        }
        assert_eq!(scheduler.pings_in_flight, 0);
        assert!([x, y, z].iter().all(|e| scheduler.flow.in_flight(*e) == 0), "{:?}", scheduler.flow);

        // Once stopping, a ping is not queued: its caller hears the engine stopped.
        scheduler.handle(SchedulerMsg::Shutdown);
        let (late, mut late_granted) = ping(x, &to_scheduler);
        scheduler.handle(SchedulerMsg::Ping(late));
        assert!(matches!(late_granted.try_recv(), Err(tokio::sync::oneshot::error::TryRecvError::Closed)));
    }
}
