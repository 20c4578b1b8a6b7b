//! The delivery engine: the one owner of scheduling.
//!
//! Every operation that puts an attempt on the durable queue or takes one off (publish,
//! resend, retry now, enabling, disabling and deleting an endpoint, recovery, a session
//! move that emits an event, expiry) is a method here that commits through the store; one
//! that queues attempts then wakes the scheduler itself, in the same task, which no caller
//! can cut short, so no entry is left unseen. The engine runs the writer (publishes and results, group-committed) and
//! the scheduler (a timer wheel over the queue) on a thread each, and on a runtime of its
//! own the senders (every attempt a task), the session expirer, the retention pass and
//! the idle-listener sweep. An entry leaves the queue only with its result, so a crash
//! at any point re-runs what was in flight (at least once), and a restart recovers every
//! scheduled attempt.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::EngineError;
use super::flow::{Flow, FlowBoard};
use super::http::{HttpSender, SendOutcome};
use super::listeners::Listeners;
use super::messages::{Inbox, PingRequest, PingSlot, RETRY_DELAY, SchedulerMsg, To, WorkItem, WriteJob};
use super::ping_rate::PingRate;
use super::policy::Policy;
use super::scheduler::{MAX_IDLE, Scheduler};
use super::senders::{Outgoing, Senders};
use super::writer;
use crate::clock::Clock;
use crate::config::Config;
use crate::event_types::kayle_alias_of;
use crate::ids::{AppId, DeliveryId, EndpointId, EventId, ReplayId, VerificationSessionId};
use crate::lifecycle::{Move, MoveError};
use crate::metrics::Metrics;
use crate::mode::Mode;
use crate::store::QueueWrites;
use crate::store::model::{
    AppDeletion, AttemptResult, EndpointRecord, EndpointUpdated, FlowState, HoldKind, Job, NewEvent, Owner, Published,
    Recovery, ReplayStep, ReplayStepped, Resent, RetryNow, Scheduled, SessionChange, SessionRecord, StoreError,
};
use crate::telemetry::{AttemptSpan, Span, Telemetry};
use crate::trace::EventTrace;
use crate::wakeup::woken_or_timed_out;

/// The running delivery engine.
pub struct Engine {
    /// The store, with the queue writes only the engine holds.
    store: QueueWrites,
    clock: Clock,
    scheduler: To<SchedulerMsg>,
    /// Wakes the session expirer (a new session may expire before its next wake-up);
    /// dropped to stop it. Shared with the clock's waker, which must not keep it alive.
    expirer: Arc<Mutex<Option<To<()>>>>,
    /// Wakes the retention task (a deleted application's history to purge); dropped to
    /// stop it.
    retention: Mutex<Option<To<()>>>,
    /// Where publishes go; dropped to stop publishing.
    writer: Mutex<Option<To<WriteJob>>>,
    /// The end of each of the engine's loops, in the order they are awaited at shutdown.
    loops: Mutex<Vec<Ended>>,
    /// The engine's runtime (taken at drop, which stops it without waiting).
    own_runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// Where requests go (HTTP, or a listen connection): the scheduler's attempts and
    /// the API's pings alike.
    senders: Arc<Senders>,
    /// How many test pings each endpoint was sent lately.
    ping_rate: PingRate,
    /// The engine's runtime, where every request is made (the API's pings too).
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    /// Hours an undelivered payload stays available to resend, for endpoints that set
    /// no window of their own.
    undelivered_hours: u32,
    /// The `stile listen` connections, where listener endpoints' attempts go.
    listeners: Arc<Listeners>,
    /// Wakes the idle-listener sweep; dropped to stop it.
    listener_expiry: Arc<Mutex<Option<To<()>>>>,
    /// Each endpoint's flow as this process's scheduler shows it.
    board: FlowBoard,
    /// Where the spans of publishes and attempts are exported, if anywhere.
    telemetry: Arc<Telemetry>,
}

impl Engine {
    /// Starts the scheduler's and the writer's threads, and the engine's runtime with the
    /// senders, the session expirer, the retention task and the idle-listener sweep on
    /// it, all reading time from `clock`. Parked attempts of endpoints that are enabled are put back on the
    /// queue first.
    pub async fn start(
        store: QueueWrites,
        clock: Clock,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, StoreError> {
        let _ = store.unpark(clock.now_ms()).await?; // the scheduler's first pass reads the whole queue
        // The scheduler below takes the first attempts the writer commits as they are.
        store.bear_births();
        let own_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(ENGINE_THREADS)
            .thread_name("stile-engine")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the delivery engine's runtime: {e}")))?;
        let runtime = own_runtime.handle().clone();
        let telemetry = Arc::new(
            Telemetry::start(&config.telemetry, &metrics)
                .map_err(|e| StoreError::Unavailable(format!("cannot start the span export: {e}")))?,
        );
        let listeners = Arc::new(Listeners::default());
        let senders = Arc::new(Senders {
            http: HttpSender::new(config).counting_resends_in(metrics.resent.clone()),
            listeners: Arc::clone(&listeners),
            listener_wait: config.delivery.timeout + LISTENER_MARGIN,
            sealer: store.sealer().clone(),
            secrets: Default::default(),
            tokens: Default::default(),
            transformer: crate::transform::Transformer::start(config.transformations.limits()),
        });
        let (scheduler_tx, scheduler_rx) = tokio::sync::mpsc::unbounded_channel();
        let (write_tx, write_rx) = tokio::sync::mpsc::unbounded_channel();
        let (work_tx, work_rx) = tokio::sync::mpsc::unbounded_channel::<WorkItem>();
        let (expirer_tx, expirer_rx) = tokio::sync::mpsc::unbounded_channel();
        let (retention_tx, retention_rx) = tokio::sync::mpsc::unbounded_channel();
        let (listener_expiry_tx, listener_expiry_rx) = tokio::sync::mpsc::unbounded_channel();
        let policy = Arc::new(Policy {
            schedule: config.delivery.retry_schedule.iter().map(|d| config.scaled(*d)).collect(),
            disable_after: config.delivery.disable_after,
            undelivered_hours: config.retention.undelivered_payload_hours,
            failing_after: Some(config.delivery.failing_after).filter(|n| *n > 0),
        });
        let scheduler = Scheduler::new(
            store.clone(),
            clock.clone(),
            work_tx,
            write_tx.clone(),
            (config.delivery.workers, Flow::new(config.delivery.per_endpoint_concurrency, config.delivery.max_pause)),
            Arc::clone(&listeners),
            Arc::clone(&metrics),
        );
        let board = scheduler.board();
        // Awaited in this order at shutdown: the scheduler ends once what is in flight is
        // recorded, which ends the senders and then the writer.
        let loops = vec![
            on_runtime(
                &runtime,
                expirer(store.clone(), clock.clone(), expirer_rx, scheduler_tx.clone(), Arc::clone(&metrics)),
            ),
            // Retention queues nothing: the shared store is enough.
            on_runtime(
                &runtime,
                crate::retention::run(Arc::clone(store.store()), clock.clone(), config.retention.events, retention_rx),
            ),
            on_runtime(
                &runtime,
                expire_idle_listeners(
                    store.clone(),
                    clock.clone(),
                    Arc::clone(&listeners),
                    config.listen.idle_expiry,
                    listener_expiry_rx,
                ),
            ),
            on_own_thread("stile-scheduler", scheduler.run(scheduler_rx)),
            on_runtime(
                &runtime,
                send_all(work_rx, scheduler_tx.clone(), Arc::clone(&senders), clock.clone(), Arc::clone(&telemetry)),
            ),
            on_own_thread(
                "stile-writer",
                writer::run(
                    store.clone(),
                    clock.clone(),
                    write_rx,
                    scheduler_tx.clone(),
                    policy,
                    config.store.commit_delay,
                    Arc::clone(&metrics),
                ),
            ),
        ];
        // Other processes on the same database queue attempts too: their wake-ups send
        // the scheduler to the queue soon rather than at its next poll.
        {
            let scheduler = scheduler_tx.clone();
            store.on_queue_change(Box::new(move || {
                let _ = scheduler.send(SchedulerMsg::Heard);
            }));
        }
        let expirer = Arc::new(Mutex::new(Some(expirer_tx)));
        let listener_expiry = Arc::new(Mutex::new(Some(listener_expiry_tx)));
        // A manual clock (tests) wakes the tasks that sleep until a due time.
        {
            let scheduler = scheduler_tx.clone();
            let expirer = Arc::clone(&expirer);
            let listener_expiry = Arc::clone(&listener_expiry);
            clock.on_advance(move || {
                let _ = scheduler.send(SchedulerMsg::Tick);
                for wake in [&expirer, &listener_expiry] {
                    if let Some(wake) = wake.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                        let _ = wake.send(());
                    }
                }
            });
        }

        Ok(Engine {
            store,
            clock,
            scheduler: scheduler_tx,
            expirer,
            retention: Mutex::new(Some(retention_tx)),
            writer: Mutex::new(Some(write_tx)),
            loops: Mutex::new(loops),
            own_runtime: Mutex::new(Some(own_runtime)),
            senders,
            ping_rate: PingRate::default(),
            runtime,
            metrics,
            undelivered_hours: config.retention.undelivered_payload_hours,
            listeners,
            listener_expiry,
            board,
            telemetry,
        })
    }

    /// Where spans are exported, if anywhere.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// What holds `endpoint`'s deliveries back now, if anything: as this process's
    /// scheduler shows it when it sends to the endpoint, or as the process that does
    /// recorded it (a shared store). `None`: nothing waits, nothing is in flight, and no
    /// pause or recovery is on.
    pub async fn flow_state(&self, endpoint: EndpointId) -> Result<Option<FlowState>, EngineError> {
        let state = match self.board.get(endpoint) {
            Some(state) => Some(state),
            None => self.store.flow_state(endpoint).await?,
        };
        let now_ms = self.clock.now_ms();
        Ok(state.map(|state| {
            let paused_until_ms = state.paused_until_ms.filter(|until| *until > now_ms);
            // A pause seen as holding deliveries, over since: what holds them now is not
            // known until the sender looks again.
            let held = state.held.filter(|held| *held != HoldKind::Paused || paused_until_ms.is_some());
            FlowState { paused_until_ms, held, ..state }
        }))
    }

    /// The `stile listen` connections.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// A CLI connected for listener endpoint `id`: other processes (on a shared store)
    /// hand this one the endpoint's attempts from now on, and the attempts that waited for
    /// a CLI go now.
    pub async fn listener_connected(&self, id: EndpointId) -> Result<(), EngineError> {
        let (store, now_ms) = (self.store.clone(), self.clock.now_ms());
        let resume = async move {
            store.hold_listener(id).await?;
            store.unpark_endpoint(id, now_ms).await
        };
        self.queue_and_wake(resume, std::mem::take).await.map(drop)
    }

    /// Runs `task` on the engine's runtime: a background loop of the server's that stops
    /// with the engine (it is not awaited at shutdown).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(task));
    }

    /// The transformation threads: what checks and tries an endpoint's transformation
    /// runs on the same limits as its deliveries.
    pub fn transformer(&self) -> &crate::transform::Transformer {
        &self.senders.transformer
    }

    /// The clock the engine runs on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Stores an event with its deliveries (group-committed with other publishes) and
    /// answers once it is durable. Its payload is sealed here, on the caller's thread.
    pub async fn publish(&self, event: NewEvent) -> Result<Published, EngineError> {
        let event = event.sealed_ahead(self.store.sealer());
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|writer| writer.send(WriteJob::Publish(event, reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(EngineError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Schedules a new round of delivery of an event: to `endpoint` if named (whatever it
    /// subscribes to), else to every enabled endpoint subscribed to its type.
    pub async fn resend_event(
        &self,
        owner: Owner,
        id: EventId,
        endpoint: Option<EndpointId>,
    ) -> Result<Resent, EngineError> {
        let (store, now_ms, hours) = (self.store.clone(), self.clock.now_ms(), self.undelivered_hours);
        let resend = async move { store.resend_event(owner, id, endpoint, now_ms, hours).await };
        self.queue_and_wake(resend, |resent| match resent {
            Resent::Scheduled(scheduled) => std::mem::take(scheduled),
            _ => Scheduled::default(),
        })
        .await
    }

    /// Takes a step of a replay: queues its deliveries again and moves it on, in one
    /// commit (see [`crate::store::rules::replay`]).
    pub async fn replay_step(
        &self,
        owner: Owner,
        id: ReplayId,
        step: ReplayStep,
    ) -> Result<ReplayStepped, EngineError> {
        let (store, now_ms, hours) = (self.store.clone(), self.clock.now_ms(), self.undelivered_hours);
        let replay = async move { store.replay_step(owner, id, step, now_ms, hours).await };
        self.queue_and_wake(replay, |stepped| match stepped {
            ReplayStepped::Moved(_, scheduled) => std::mem::take(scheduled),
            _ => Scheduled::default(),
        })
        .await
    }

    /// Moves a scheduled attempt to now: `id` names the pending attempt or the `retrying`
    /// attempt whose retry it is.
    pub async fn retry_now(&self, owner: Owner, endpoint: EndpointId, id: DeliveryId) -> Result<RetryNow, EngineError> {
        let (store, now_ms) = (self.store.clone(), self.clock.now_ms());
        let retry = async move { store.retry_now(owner, endpoint, id, now_ms).await };
        self.queue_and_wake(retry, |outcome| match outcome {
            RetryNow::Moved(_, scheduled) => std::mem::take(scheduled),
            _ => Scheduled::default(),
        })
        .await
    }

    /// Changes an endpoint. With `enables` (the change sets it enabled), the retries that
    /// waited while it was disabled go now and its health starts over. Disabling needs
    /// nothing more: the scheduler parks a disabled endpoint's attempts as they come due.
    /// `None`: no such endpoint.
    pub async fn update_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        enables: bool,
        change: impl FnOnce(&mut EndpointRecord) + Send + 'static,
    ) -> Result<Option<EndpointRecord>, EngineError> {
        let (store, now_ms) = (self.store.clone(), self.clock.now_ms());
        let update = then_endpoints_changed(self.scheduler.clone(), async move {
            store.update_endpoint_and_resume(owner, id, now_ms, enables, change).await
        });
        let updated = self.queue_and_wake(update, |updated| {
            updated.as_mut().map(|u| std::mem::take(&mut u.resumed)).unwrap_or_default()
        });
        Ok(updated.await?.map(|EndpointUpdated { endpoint, .. }| endpoint))
    }

    /// Deletes an endpoint and ends its pending deliveries (they become `failed`); the
    /// scheduler drops their entries, and a `stile listen` connection of it ends.
    /// `false`: no such endpoint.
    pub async fn delete_endpoint(&self, owner: Owner, id: EndpointId) -> Result<bool, EngineError> {
        let (store, now) = (self.store.clone(), self.clock.now());
        let delete =
            then_endpoints_changed(self.scheduler.clone(), async move { store.delete_endpoint(owner, id, now).await });
        let deleted = self.to_the_end(delete).await?;
        self.listeners.close(id);
        Ok(deleted)
    }

    /// Deletes an application of `mode` (not the default one): it and its endpoints are
    /// gone at once, their pending deliveries end (the scheduler drops their entries) and
    /// its `stile listen` connections close; the retention task is woken to purge its
    /// history in the background.
    pub async fn delete_app(&self, mode: Mode, id: AppId) -> Result<AppDeletion, EngineError> {
        let (store, now_ms) = (self.store.clone(), self.clock.now_ms());
        let delete =
            then_endpoints_changed(self.scheduler.clone(), async move { store.delete_app(mode, id, now_ms).await });
        let deletion = self.to_the_end(delete).await?;
        if let AppDeletion::Deleted { listeners, .. } = &deletion {
            for endpoint in listeners {
                self.listeners.close(*endpoint);
            }
            if let Some(retention) = self.retention.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                let _ = retention.send(()); // the task takes wake-ups waiting together as one
            }
        }
        Ok(deletion)
    }

    /// Resends to an endpoint every event whose delivery to it failed for good among
    /// attempts made since `since` (Unix seconds); `dry_run` only counts. `None`: no such
    /// endpoint.
    pub async fn recover_endpoint(
        &self,
        owner: Owner,
        id: EndpointId,
        since: i64,
        dry_run: bool,
    ) -> Result<Option<Recovery>, EngineError> {
        let (store, now_ms, hours) = (self.store.clone(), self.clock.now_ms(), self.undelivered_hours);
        let recover = async move { store.recover_endpoint(owner, id, since, dry_run, now_ms, hours).await };
        self.queue_and_wake(recover, |recovery| {
            recovery.as_mut().map(|r| std::mem::take(&mut r.scheduled)).unwrap_or_default()
        })
        .await
    }

    /// Stores a new session with its `verification_session.created` event and its expiry
    /// `lifetime` from now.
    pub async fn create_session(&self, session: SessionRecord, expires_ms: u64) -> Result<SessionRecord, EngineError> {
        let (store, now_ms) = (self.store.clone(), self.clock.now_ms());
        let event = crate::lifecycle::created(&session, self.clock.now()).map_err(encode_error)?;
        let create = async move { store.create_session(session, event, expires_ms, now_ms).await };
        let created = self.queue_and_wake(create, |changed| std::mem::take(&mut changed.scheduled)).await?;
        self.metrics.events.inc();
        self.metrics.filtered.inc_by(u64::from(created.filtered));
        if let Some(expirer) = self.expirer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // It may expire before the expirer's next wake-up.
            let _ = expirer.send(());
        }
        Ok(created.session)
    }

    /// Moves a session and emits the move's event, in one transaction.
    pub async fn move_session(
        &self,
        owner: Owner,
        id: VerificationSessionId,
        step: Move,
    ) -> Result<SessionMoved, EngineError> {
        let (store, now_ms, now) = (self.store.clone(), self.clock.now_ms(), self.clock.now());
        let change = async move { store.change_session(owner, id, now_ms, move |s| step.apply(s, now)).await };
        let change = self
            .queue_and_wake(change, |change| match change {
                SessionChange::Changed(changed) => std::mem::take(&mut changed.scheduled),
                _ => Scheduled::default(),
            })
            .await?;
        Ok(match change {
            SessionChange::Changed(changed) => {
                self.metrics.events.inc();
                self.metrics.filtered.inc_by(u64::from(changed.filtered));
                SessionMoved::Moved(changed.session)
            }
            SessionChange::Refused(MoveError::Encode(err)) => return Err(encode_error(err)),
            SessionChange::Refused(refusal) => SessionMoved::Refused(refusal),
            SessionChange::Missing => SessionMoved::Missing,
        })
    }

    /// Sends one request to `endpoint` now, outside the queue (the test ping), on the
    /// delivery runtime; returns the outcome and the headers sent. It takes one of the
    /// endpoint's in-flight slots like any attempt (after its allowance of pings per
    /// second, [`EngineError::PingRateExceeded`]), waiting for one at most
    /// [`PING_SLOT_WAIT`] (then [`EngineError::EndpointBusy`]); one paused after a
    /// refusal, by this process or the one sending to it, is not pinged until the pause
    /// ends ([`EngineError::EndpointPaused`]); a listener endpoint's goes
    /// down its `stile listen` connection, and is refused while this process holds none
    /// ([`EngineError::ListenerNotConnected`]).
    pub async fn ping(
        &self,
        endpoint: EndpointRecord,
        out: Outgoing,
    ) -> Result<(SendOutcome, Vec<(String, String)>), EngineError> {
        if endpoint.is_listener() && !self.listeners.is_connected(endpoint.id) {
            return Err(EngineError::ListenerNotConnected);
        }
        if let Some(until) = self.flow_state(endpoint.id).await?.and_then(|flow| flow.paused_until_ms) {
            let retry_after = Duration::from_millis(until.saturating_sub(self.clock.now_ms()));
            return Err(EngineError::EndpointPaused { retry_after });
        }
        self.ping_rate
            .admit(endpoint.id, std::time::Instant::now())
            .map_err(|retry_after| EngineError::PingRateExceeded { retry_after })?;
        let (reply, granted) = tokio::sync::oneshot::channel();
        let slot = PingSlot::new(endpoint.id, self.scheduler.clone());
        if self.scheduler.send(SchedulerMsg::Ping(PingRequest { slot, reply })).is_err() {
            return Err(EngineError::ShuttingDown);
        }
        let slot = match tokio::time::timeout(PING_SLOT_WAIT, granted).await {
            Err(_) => return Err(EngineError::EndpointBusy { retry_after: PING_BUSY_RETRY_AFTER }),
            Ok(Err(_)) => return Err(EngineError::ShuttingDown),
            Ok(Ok(slot)) => slot,
        };
        let senders = Arc::clone(&self.senders);
        // The slot goes with the request: if the caller gives up, the request still ends
        // within the delivery timeout and only then frees the slot.
        let sending = async move {
            let sent = senders.send(&endpoint, out).await;
            drop(slot);
            sent
        };
        self.runtime.spawn(sending).await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Stops publishing, lets attempts in flight finish (each bounded by the delivery
    /// timeout), records them, and waits for every task to end. Whatever is still queued runs at
    /// the next start. Safe to call more than once.
    pub async fn shutdown(&self) {
        self.stop();
        let loops: Vec<Ended> = std::mem::take(&mut *self.loops.lock().unwrap_or_else(|p| p.into_inner()));
        for ended in loops {
            let _ = ended.await;
        }
        self.telemetry.flush(TELEMETRY_FLUSH).await;
    }

    /// Tells every loop to stop: no more publishes or wake-ups, listen connections closed,
    /// the scheduler told to finish what is in flight.
    fn stop(&self) {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.expirer.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.retention.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.listener_expiry.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.listeners.close_all();
        let _ = self.scheduler.send(SchedulerMsg::Shutdown);
    }

    /// Runs `write`, a store write that queues attempts, and then wakes the scheduler
    /// with what it queued (`queued` takes that out of the answer), to the end
    /// ([`Engine::to_the_end`]): never the commit without the wake-up, which would leave
    /// the new entries unseen until the next start.
    async fn queue_and_wake<T: Send + 'static>(
        &self,
        write: impl Future<Output = Result<T, StoreError>> + Send + 'static,
        queued: impl FnOnce(&mut T) -> Scheduled + Send + 'static,
    ) -> Result<T, EngineError> {
        let scheduler = self.scheduler.clone();
        self.to_the_end(async move {
            let mut answer = write.await?;
            let scheduled = queued(&mut answer);
            if !scheduled.is_empty() {
                let _ = scheduler.send(SchedulerMsg::Scheduled(scheduled));
            }
            Ok::<_, StoreError>(answer)
        })
        .await
    }

    /// Runs `work` as one task on the engine's runtime and waits for it: a caller that
    /// gives up (its client gone, its request timed out, the server stopping) cannot stop
    /// it between a commit and the word to the scheduler that must follow it.
    async fn to_the_end<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, EngineError> {
        match self.runtime.spawn(work).await {
            Ok(answer) => Ok(answer?),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }
}

/// `write` (an engine write that changes or deletes endpoints), then word to the scheduler
/// that what it kept of endpoints may be stale (see `born_jobs`), whatever `write`
/// returned: it may have committed before it failed.
async fn then_endpoints_changed<T>(scheduler: To<SchedulerMsg>, write: impl Future<Output = T>) -> T {
    let written = write.await;
    let _ = scheduler.send(SchedulerMsg::EndpointsChanged);
    written
}

/// What [`Engine::move_session`] did.
#[derive(Debug)]
pub enum SessionMoved {
    /// The session after the move.
    Moved(SessionRecord),
    /// The session's status does not allow the move; nothing changed.
    Refused(MoveError),
    /// No such session in this application.
    Missing,
}

impl Drop for Engine {
    /// Tells the loops to stop and stops the engine's runtime without waiting for it:
    /// after [`Engine::shutdown`] they are done; without, the requests in flight are
    /// dropped with the runtime (the scheduler stops once no sender is left to hear from,
    /// and the writer once the scheduler is gone), and what was in flight is sent again at
    /// the next start, as after a crash.
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.own_runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
            runtime.shutdown_background();
        }
    }
}

/// A session event that could not be encoded: a fault of the server, not the caller.
fn encode_error(source: serde_json::Error) -> EngineError {
    StoreError::Encode { table: "event_bodies", source }.into()
}

/// The engine runtime's worker threads: one, for the senders' HTTP (one async thread
/// delivered faster than many: see `http.rs`) and the engine's light loops; the scheduler
/// and the writer have a thread each.
const ENGINE_THREADS: usize = 1;

/// How long a stopping server waits for its last spans to be exported.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

/// Says when one of the engine's loops has ended (its sender is dropped then).
type Ended = tokio::sync::oneshot::Receiver<()>;

/// Runs `work` as a task on the engine's runtime.
fn on_runtime(runtime: &tokio::runtime::Handle, work: impl Future<Output = ()> + Send + 'static) -> Ended {
    let (done, ended) = tokio::sync::oneshot::channel();
    drop(runtime.spawn(async move {
        work.await;
        drop(done);
    }));
    ended
}

/// Runs `work` alone on a thread of its own, on a current-thread runtime, where redb's
/// work runs inline (`store::allow_blocking_on_this_thread`): for the scheduler and the
/// writer, whose store calls are their hot path. On the shared runtime each call was a
/// hand-off to the blocking pool and back, and W1 (a burst, redb) delivered a fifth less
/// (5.7–6.0k vs 7.5–7.9k deliveries/s, CPU per delivery 0.20 vs 0.16 ms).
fn on_own_thread(name: &str, work: impl Future<Output = ()> + Send + 'static) -> Ended {
    let (done, ended) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            crate::store::allow_blocking_on_this_thread();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the OS gives a runtime its timers and sockets");
            runtime.block_on(work);
            drop(done);
        })
        .expect("the OS starts a thread");
    ended
}

/// How much longer than `delivery.timeout` the engine waits for a `stile listen` result:
/// the CLI's own request to the local app gets the timeout, the network the rest.
const LISTENER_MARGIN: Duration = Duration::from_secs(5);

/// The longest a test ping waits for one of its endpoint's in-flight slots (all taken by
/// deliveries or other pings) before it is answered "busy".
pub const PING_SLOT_WAIT: Duration = Duration::from_secs(10);

/// When a ping that found its endpoint busy may try again (`Retry-After`).
const PING_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Makes every attempt the scheduler hands over, each as a task on the delivery runtime
/// (the scheduler keeps at most `delivery.workers` in flight), until the scheduler stops.
async fn send_all(
    mut work: tokio::sync::mpsc::UnboundedReceiver<WorkItem>,
    done: To<SchedulerMsg>,
    senders: Arc<Senders>,
    clock: Clock,
    telemetry: Arc<Telemetry>,
) {
    // Shared by the tasks: cloning a hand-off sender takes its lock, once per attempt
    // would be twice more than the send itself.
    let shared = Arc::new((senders, done, clock, telemetry));
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(item) = work.recv().await {
        let shared = Arc::clone(&shared);
        in_flight.spawn(async move {
            let (senders, done, clock, telemetry) = &*shared;
            let result = attempt(senders, telemetry, item.job, item.key, clock.now_ms()).await;
            let _ = done.send(SchedulerMsg::Done(Box::new(result)));
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// Signs and sends one attempt at `now_ms` (Unix ms), its span exported if its trace is.
async fn attempt(
    senders: &Senders,
    telemetry: &Telemetry,
    job: Job,
    key: crate::store::model::queue::QueueKey,
    now_ms: u64,
) -> AttemptResult {
    let now = (now_ms / 1000) as i64;
    let mut result = AttemptResult {
        queue_key: key,
        endpoint: job.attempt.endpoint_id,
        succeeded: false,
        response_status: None,
        response_body: None,
        error: None,
        duration_ms: 0,
        attempted_at_ms: now_ms,
        request_headers: Vec::new(),
        retry_after: None,
        unreached: false,
        cancelled: false,
        sent: None,
        sealed: false,
    };
    let (Some(endpoint), Some(body)) = (job.endpoint, job.body) else {
        result.error = Some("endpoint deleted".into());
        return result;
    };
    // An endpoint subscribed by a Kayle name receives the event under that name.
    let body = if kayle_alias_of(&job.attempt.event_type).is_some() {
        crate::payload::as_delivered(body, &job.attempt.event_type)
    } else {
        body
    };
    let out = Outgoing {
        delivery_id: job.attempt.id.to_string(),
        event_id: job.attempt.event_id.to_string(),
        event_type: job.attempt.event_type.clone(),
        attempt: job.attempt.attempt,
        body: body.into(),
        now,
        trace: job.trace.as_ref().map(EventTrace::attempt),
    };
    // Off (or unsampled), nothing is copied or timed for a span.
    let exported = out.trace.as_ref().filter(|trace| telemetry.exports(&trace.event)).cloned();
    let started = exported.as_ref().map(|_| std::time::SystemTime::now());
    let (outcome, headers) = senders.send(&endpoint, out).await;
    if let (Some(trace), Some(started)) = (exported, started) {
        telemetry.send(Span::Attempt(AttemptSpan {
            trace,
            app: endpoint.app,
            endpoint: endpoint.id,
            // As sent: where the endpoint's transformation made it go, if it did.
            url: outcome.sent.as_ref().map_or_else(|| endpoint.url.clone(), |sent| sent.url.clone()),
            method: if outcome.sent.as_ref().is_some_and(|sent| sent.method == "PUT") { "PUT" } else { "POST" },
            delivery: job.attempt.id,
            event: job.attempt.event_id,
            event_type: job.attempt.event_type.clone(),
            number: job.attempt.attempt,
            during: (started, std::time::SystemTime::now()),
            status: outcome.status,
            error: outcome.failure(),
        }));
    }
    tracing::debug!(
        attempt = %job.attempt.id,
        trace_id = %job.trace.as_ref().map(|trace| trace.trace_id().to_string()).unwrap_or_default(),
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
    result.unreached = outcome.unreached;
    result.cancelled = outcome.cancelled;
    result.sent = outcome.sent;
    result.sealed_ahead(&senders.sealer)
}

/// How often the idle-listener sweep looks for idle listener endpoints (a manual
/// clock wakes it when moved).
const LISTENER_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Removes listener endpoints no CLI has used for `idle` (with their pending deliveries,
/// which end as failed), until the engine drops its sender. `idle` 0 keeps them all.
async fn expire_idle_listeners(
    store: QueueWrites,
    clock: Clock,
    listeners: Arc<Listeners>,
    idle: Duration,
    mut wake: Inbox<()>,
) {
    let mut wait = Duration::ZERO;
    while woken_or_timed_out(&mut wake, wait).await {
        wait = LISTENER_SWEEP_EVERY;
        if idle.is_zero() {
            continue;
        }
        let now = clock.now();
        let cutoff = now - i64::try_from(idle.as_secs()).unwrap_or(i64::MAX / 2);
        let idle_ones = match store.idle_listeners(cutoff).await {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "cannot look for idle listener endpoints; retrying");
                wait = RETRY_DELAY;
                continue;
            }
        };
        for (owner, id) in idle_ones.into_iter().filter(|(_, id)| !listeners.is_connected(*id)) {
            match store.delete_endpoint(owner, id, now).await {
                Ok(_) => {
                    tracing::info!(endpoint = %id, app = %owner.app, "listener endpoint removed after going unused for [listen] idle_expiry")
                }
                Err(err) => tracing::error!(endpoint = %id, error = %err, "cannot remove an idle listener endpoint"),
            }
        }
    }
}

/// The most sessions expired in one transaction.
const MAX_EXPIRE_BATCH: usize = 512;

/// The session expirer: sleeps until the next session is due to expire (the durable
/// `session_expiry` table is the truth, so expiries survive restarts), expires it with its
/// event, and hands the event's deliveries to the scheduler. Woken early when a session
/// is created or the clock is moved; stops when the engine drops its sender.
async fn expirer(
    store: QueueWrites,
    clock: Clock,
    mut wake: Inbox<()>,
    scheduler: To<SchedulerMsg>,
    metrics: Arc<Metrics>,
) {
    let mut wait = Duration::ZERO;
    while woken_or_timed_out(&mut wake, wait).await {
        let now_ms = clock.now_ms();
        let now = clock.now();
        wait = match store.expire_due_sessions(now_ms, MAX_EXPIRE_BATCH, move |s| Move::Expire.apply(s, now)).await {
            Ok((expired, scheduled)) => {
                metrics.events.inc_by(expired as u64);
                if !scheduled.is_empty() {
                    let _ = scheduler.send(SchedulerMsg::Scheduled(scheduled));
                }
                if expired == MAX_EXPIRE_BATCH {
                    Duration::ZERO
                } else {
                    match store.next_session_expiry().await {
                        Ok(Some(due)) => Duration::from_millis(due.saturating_sub(clock.now_ms())).min(MAX_IDLE * 60),
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::sync::{Semaphore, watch};

    use super::*;
    use crate::mode::Mode;
    use crate::store::Store;
    use crate::store::model::EndpointRecord;

    /// A receiver on loopback: answers 200 to every request, one connection each, and
    /// publishes the paths it was asked for, in order; a request to a path starting
    /// `/hold` is answered only once `release` has permits (one each).
    async fn receiver() -> (String, watch::Receiver<Vec<String>>, Arc<Semaphore>) {
        let (seen, paths) = watch::channel(Vec::new());
        let (seen, release) = (Arc::new(seen), Arc::new(Semaphore::new(0)));
        let held = Arc::clone(&release);
        let base = crate::delivery::loopback::serve(move |path: String| {
            let (seen, held) = (Arc::clone(&seen), Arc::clone(&held));
            async move {
                seen.send_modify(|paths| paths.push(path.clone()));
                if path.starts_with("/hold") {
                    let _ = held.acquire().await.map(|permit| permit.forget());
                }
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
            }
        })
        .await;
        (base, paths, release)
    }

    /// The paths asked for once there are `n` of them (at most 30 s).
    async fn until_received(paths: &mut watch::Receiver<Vec<String>>, n: usize) -> Vec<String> {
        let waited = async { paths.wait_for(|seen| seen.len() >= n).await.map(|seen| seen.clone()) };
        match tokio::time::timeout(Duration::from_secs(30), waited).await {
            Ok(Ok(seen)) => seen,
            _ => panic!("{n} requests expected, got {:?}", *paths.borrow()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endpoint_changed_through_the_engine_gets_its_kept_born_attempts_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let (_, queue) = Store::open(dir.path()).unwrap().into_shared();
        let owner = queue.test_owner(Mode::Test).await;
        let (base, mut paths, release) = receiver().await;
        // One request at a time to the held endpoint; the other one tells when the
        // scheduler has heard of everything committed before it.
        let mut held = EndpointRecord::for_test(owner, &format!("{base}/hold"), "a.held");
        held.max_in_flight = Some(1);
        let marker = EndpointRecord::for_test(owner, &format!("{base}/marker"), "a.marker");
        queue.insert_endpoint(held.clone()).await.unwrap();
        queue.insert_endpoint(marker).await.unwrap();
        // A clock that stands still: a kept job never grows too old to send as kept, so
        // only the engine's word can make the scheduler read it again.
        let clock = Clock::manual(1_800_000_000_000);
        let engine = Engine::start(queue, clock.clone(), &Config::default(), Arc::default()).await.unwrap();
        let event = |event_type: &str| {
            crate::payload::new_event(owner, event_type, &serde_json::json!({}), clock.now_ms()).unwrap()
        };

        // The first goes out and is held; the next two are born behind it and kept.
        engine.publish(event("a.held")).await.unwrap();
        until_received(&mut paths, 1).await;
        engine.publish(event("a.held")).await.unwrap();
        engine.publish(event("a.held")).await.unwrap();
        // The writer tells the scheduler in commit order: once this one arrives, the two
        // before it are kept.
        engine.publish(event("a.marker")).await.unwrap();
        until_received(&mut paths, 2).await;

        let moved = engine
            .update_endpoint(owner, held.id, false, move |e| e.url = format!("{base}/moved"))
            .await
            .unwrap()
            .expect("the endpoint exists");
        assert!(moved.url.ends_with("/moved"));
        release.add_permits(16);
        let seen = until_received(&mut paths, 4).await;
        assert_eq!(seen[..2], ["/hold".to_string(), "/marker".to_string()]);
        assert_eq!(seen[2..], ["/moved".to_string(), "/moved".to_string()], "sent where the endpoint is now");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_engine_dropped_without_a_shutdown_lets_go_of_its_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, queue) = Store::open(dir.path()).unwrap().into_shared();
        let engine = Engine::start(queue, Clock::manual(1_800_000_000_000), &Config::default(), Arc::default())
            .await
            .expect("the engine starts");
        drop(engine);
        // Its loops stop by themselves (the scheduler once no sender is left to hear
        // from, the writer after it), and the last handle on the file goes with them.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Store::open(dir.path()) {
                Ok(_) => break,
                Err(err) if Instant::now() < deadline => {
                    tracing::debug!(error = %err, "the data file is still open");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("the engine's loops still hold the data file after 10 s: {err}"),
            }
        }
    }
}
