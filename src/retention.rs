//! The retention thread: prunes history older than `[retention] events` in the
//! background, in small batches, so the data file stays bounded under steady load.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::clock::Clock;
use crate::store::Store;
use crate::store::retention::{Cutoffs, PruneCursor, Pruned};

/// Entries removed per table per transaction: small enough that a batch holds the
/// writer for milliseconds, so publishing and recording go on between batches.
const BATCH: usize = 500;

/// How long an idempotency record is worth keeping: past the replay window a key is new.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(crate::store::idempotency::WINDOW_SECS as u64);

/// How often to look for old history: a tenth of the retention period, between 100 ms
/// (for second-scale retention in tests and demos) and 10 minutes.
pub fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(600))
}

/// Prunes every `interval(retention)` until `stop` is dropped. Each pass removes
/// everything older than the retention period, one batch per transaction.
pub fn run(store: Arc<Store>, clock: Clock, retention: Duration, stop: Receiver<()>) {
    let every = interval(retention);
    let mut wait = Duration::ZERO;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
        wait = every;
        let now = clock.now_ms();
        let cutoffs = Cutoffs {
            history_ms: now.saturating_sub(retention.as_millis() as u64),
            idempotency_secs: (now.saturating_sub(retention.min(IDEMPOTENCY_WINDOW).as_millis() as u64) / 1000) as i64,
        };
        let mut cursor = PruneCursor::default();
        let mut total = Pruned::default();
        loop {
            match store.prune(cutoffs, &mut cursor, BATCH) {
                Ok(pruned) => {
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
            // Between batches, stop promptly if the server is stopping.
            if !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)) {
                return;
            }
        }
        if total.removed() > 0 {
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
    }
}
