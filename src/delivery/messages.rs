//! What the engine's threads tell each other: the scheduler, the writer and the delivery
//! runtime share these types (and none of them imports another for them).

use std::time::Duration;

use crate::ids::{DeliveryId, EndpointId};
use crate::store::attempts::AttemptResult;
use crate::store::events::{NewEvent, Published};
use crate::store::jobs::Job;
use crate::store::queue::{QueueKey, Scheduled};

use super::error::EngineError;

/// How long to wait before retrying after the store failed.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Messages to the scheduler thread.
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
    /// Another process sharing the queue queued entries: look at it again soon (see
    /// `scheduler::HEARD_DELAY_MS`).
    Heard,
    /// Finish what is in flight, record it, and stop.
    Shutdown,
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
