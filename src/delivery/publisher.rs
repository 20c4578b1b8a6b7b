//! Group commit for publishes: one thread takes every publish waiting, writes them all
//! in one transaction with one fsync, then answers each. Under load a batch grows by
//! itself (whatever arrived during the last commit goes into the next), so latency stays
//! near one commit and throughput grows with the batch.

use std::sync::Arc;

use super::engine::SchedulerMsg;
use super::handoff::{Receiver, Sender};
use crate::clock::unix_now_ms;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::events::{NewEvent, Published};

/// The most publishes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// One publish waiting for its commit.
pub(crate) struct PublishJob {
    pub(crate) event: NewEvent,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Published, ApiError>>,
}

/// Runs until every sender of `jobs` is gone, then returns after the last batch.
pub(crate) fn run(
    store: Arc<Store>,
    jobs: Receiver<PublishJob>,
    scheduler: Sender<SchedulerMsg>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = jobs.recv() {
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            std::iter::once(first).chain(jobs.take_queued(MAX_BATCH - 1)).map(|job| (job.event, job.reply)).unzip();
        match store.publish_events(&events, unix_now_ms()) {
            Ok((published, keys)) => {
                metrics.events.inc_by(published.len() as u64);
                if !keys.is_empty() {
                    let _ = scheduler.send(SchedulerMsg::Scheduled(keys));
                }
                for (reply, result) in replies.into_iter().zip(published) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) => {
                let err = ApiError::from(err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
