//! The retention task: prunes history older than `[retention] events` in the
//! background, in small batches, so the data file stays bounded under steady load, and
//! purges what deleted applications left behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver as Receiver;

use crate::clock::Clock;
use crate::store::Store;
use crate::store::model::{Cutoffs, PruneCursor, Pruned};
use crate::wakeup::woken_or_timed_out;

/// Entries removed per table per transaction: small enough that a batch holds the
/// writer for a couple of milliseconds (500 took ~10 ms, and a pass of them back to back
/// held publishes up for tens of milliseconds: benchmark W8).
const BATCH: usize = 100;

/// The shortest pause after a batch, so a publish or a delivery result waiting for the
/// writer takes it before the next batch does (redb's writer lock is not fair). The pause
/// is as long as the batch took, if longer: pruning holds the writer at most half the
/// time, so a pass never queues publishes behind batch after batch.
const BETWEEN_BATCHES: Duration = Duration::from_millis(1);

/// How long an idempotency record is worth keeping: past the replay window a key is new.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(crate::store::model::sessions::WINDOW_SECS as u64);

/// How long a deleted application is remembered after its history is purged: longer than
/// any request that resolved it before the deletion can take to publish into it.
const DELETED_APP_SETTLE: Duration = Duration::from_secs(300);

/// How often to look for old history: a tenth of the retention period, between 100 ms
/// (for second-scale retention in tests and demos) and 10 minutes.
pub fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(600))
}

/// Prunes every `interval(retention)`, and whenever `wake` brings a message (an
/// application was deleted), until `wake`'s sender is dropped. Each pass purges deleted
/// applications, then removes everything older than the retention period, one batch per
/// transaction.
pub async fn run(store: Arc<Store>, clock: Clock, retention: Duration, mut wake: Receiver<()>) {
    let every = interval(retention);
    let mut wait = Duration::ZERO;
    while woken_or_timed_out(&mut wake, wait).await {
        wait = every;
        // With many processes on one database, one of them does this for all.
        match store.lead().await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "cannot tell whether this process prunes; trying again later");
                continue;
            }
        }
        if purge_deleted_apps(&store, &clock, &mut wake).await.is_err()
            || prune_history(&store, &clock, retention, &mut wake).await.is_err()
        {
            return;
        }
    }
}

/// The server is stopping: the pass ends early.
struct Stopping;

/// Pauses after a batch that took `took` (that long, at least [`BETWEEN_BATCHES`]);
/// whether the server is stopping (checked there, so a pass stops promptly).
async fn between_batches(wake: &mut Receiver<()>, took: Duration) -> Result<(), Stopping> {
    if woken_or_timed_out(wake, took.max(BETWEEN_BATCHES)).await { Ok(()) } else { Err(Stopping) }
}

/// Purges deleted applications' history, one batch per transaction.
async fn purge_deleted_apps(store: &Store, clock: &Clock, wake: &mut Receiver<()>) -> Result<(), Stopping> {
    let settled_before = clock.now_ms().saturating_sub(DELETED_APP_SETTLE.as_millis() as u64);
    let mut removed = 0;
    loop {
        let started = Instant::now();
        match store.purge_deleted_apps(BATCH, settled_before).await {
            Ok(purge) => {
                removed += purge.removed;
                if purge.finished > 0 {
                    tracing::info!(applications = purge.finished, "deleted applications purged");
                }
                if !purge.more {
                    break;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot purge deleted applications; trying again later");
                break;
            }
        }
        between_batches(wake, started.elapsed()).await?;
    }
    if removed > 0 {
        tracing::debug!(rows = removed, "purged the history of deleted applications");
    }
    Ok(())
}

/// Removes everything older than the retention period.
async fn prune_history(
    store: &Store,
    clock: &Clock,
    retention: Duration,
    wake: &mut Receiver<()>,
) -> Result<(), Stopping> {
    let now = clock.now_ms();
    let cutoffs = Cutoffs {
        history_ms: now.saturating_sub(retention.as_millis() as u64),
        idempotency_secs: (now.saturating_sub(retention.min(IDEMPOTENCY_WINDOW).as_millis() as u64) / 1000) as i64,
        now_ms: now,
    };
    let mut cursor = PruneCursor::default();
    let mut total = Pruned::default();
    loop {
        let started = Instant::now();
        match store.prune(cutoffs, std::mem::take(&mut cursor), BATCH).await {
            Ok((pruned, next)) => {
                cursor = next;
                total += pruned;
                if !pruned.more {
                    break;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot prune old history; trying again later");
                break;
            }
        }
        between_batches(wake, started.elapsed()).await?;
    }
    if total.removed() > 0 {
        if let Err(err) = store.persist().await {
            tracing::error!(error = %err, "cannot make the pruning durable; the next pass prunes again");
        }
        tracing::debug!(
            events = total.events,
            attempts = total.attempts,
            idempotency = total.idempotency,
            sessions = total.sessions,
            stats = total.stats,
            stale_idempotency_entries = total.stale_entries,
            "pruned history older than the retention period"
        );
    }
    Ok(())
}
