//! What the engine's tasks tell each other: the scheduler, the writer and the senders
//! share these types (and none of them imports another for them). Every inbox is a tokio
//! unbounded channel, and every answer a oneshot: the engine's two kinds of channel.

use std::time::Duration;

use crate::ids::{DeliveryId, EndpointId};
use crate::store::model::{AttemptResult, Job, NewEvent, Published, QueueKey, Scheduled};

use super::error::EngineError;

/// Where a task's messages go: the sending side of its inbox (sending never waits).
pub(super) type To<T> = tokio::sync::mpsc::UnboundedSender<T>;

/// A task's inbox.
pub(super) type Inbox<T> = tokio::sync::mpsc::UnboundedReceiver<T>;

/// How long to wait before retrying after the store failed.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Messages to the scheduler.
pub(super) enum SchedulerMsg {
    /// New queue entries were committed (possibly earlier than the scan position).
    Scheduled(Scheduled),
    /// An attempt finished (not yet recorded).
    Done(Box<AttemptResult>),
    /// The writer committed these results (attempt, endpoint), and queued these entries
    /// (retries, and the first attempts of published events).
    Recorded(Vec<(DeliveryId, EndpointId)>, Scheduled),
    /// The clock moved: look at the queue again.
    Tick,
    /// Endpoints or applications were changed or deleted through the engine: the jobs
    /// kept for born entries may be stale (see `born_jobs`).
    EndpointsChanged,
    /// Another process sharing the queue queued entries: look at it again soon (see
    /// `scheduler::HEARD_DELAY_MS`).
    Heard,
    /// A test ping asks for one of its endpoint's in-flight slots.
    Ping(PingRequest),
    /// A ping given a slot finished: the slot is free.
    PingDone(EndpointId),
    /// Finish what is in flight, record it, and stop.
    Shutdown,
}

/// A test ping waiting for a slot: the slot to grant and where to send it.
pub(super) struct PingRequest {
    /// Granted by the scheduler and sent back through `reply`.
    pub(super) slot: PingSlot,
    /// Where the granted slot goes; closed if the ping stopped waiting.
    pub(super) reply: tokio::sync::oneshot::Sender<PingSlot>,
}

/// One of an endpoint's in-flight slots, held by a test ping. Once granted, dropping it
/// tells the scheduler the slot is free, however the ping ends (also when the ping had
/// stopped waiting and the grant never reached it).
pub(super) struct PingSlot {
    /// The endpoint pinged.
    pub(super) endpoint: EndpointId,
    /// Whether the scheduler counted it in flight.
    granted: bool,
    /// Where `PingDone` goes when a granted slot is dropped.
    scheduler: To<SchedulerMsg>,
}

impl PingSlot {
    /// A slot of `endpoint`, not yet granted, that reports back to `scheduler`.
    pub(super) fn new(endpoint: EndpointId, scheduler: To<SchedulerMsg>) -> Self {
        Self { endpoint, granted: false, scheduler }
    }

    /// Marks the slot counted in flight: from now on dropping it frees the slot.
    pub(super) fn grant(mut self) -> Self {
        self.granted = true;
        self
    }
}

impl Drop for PingSlot {
    fn drop(&mut self) {
        if self.granted {
            let _ = self.scheduler.send(SchedulerMsg::PingDone(self.endpoint));
        }
    }
}

/// What the writer commits.
pub(super) enum WriteJob {
    /// An event to store with its deliveries, and where to answer once it is durable.
    Publish(NewEvent, tokio::sync::oneshot::Sender<Result<Published, EngineError>>),
    /// A finished attempt.
    Result(AttemptResult),
}

/// One attempt handed to the delivery runtime.
pub(super) struct WorkItem {
    /// What to send.
    pub(super) job: Job,
    /// Its queue entry.
    pub(super) key: QueueKey,
}
