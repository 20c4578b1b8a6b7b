//! Upkeep: what retention, recovery, statistics and key rotation report.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::ids::{EndpointId, EventId};
use crate::store::model::StoreError;
use crate::store::sealing::KeyError;

use super::attempts::{AttemptRecord, AttemptStatus, undelivered_expired};
use super::errors::OpenError;
use super::queue::Scheduled;
/// What one pruning batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events (with their payloads).
    pub events: usize,
    /// Delivery attempts (with their index entries).
    pub attempts: usize,
    /// Stored idempotent responses.
    pub idempotency: usize,
    /// Verification sessions that ended.
    pub sessions: usize,
    /// Per-minute statistics rows.
    pub stats: usize,
    /// Age-index entries of idempotency keys that were stored again later.
    pub stale_entries: usize,
    /// Portal sessions past their expiry.
    pub portal_sessions: usize,
    /// Whether some table had more old entries than the batch took: call again.
    pub more: bool,
}

impl std::ops::AddAssign for Pruned {
    /// Adds a batch's counts to a pass's (and its `more`, which a pass rarely needs).
    fn add_assign(&mut self, batch: Pruned) {
        self.events += batch.events;
        self.attempts += batch.attempts;
        self.idempotency += batch.idempotency;
        self.sessions += batch.sessions;
        self.stats += batch.stats;
        self.stale_entries += batch.stale_entries;
        self.portal_sessions += batch.portal_sessions;
        self.more |= batch.more;
    }
}

impl Pruned {
    /// Entries removed, all tables together.
    pub fn removed(&self) -> usize {
        self.events
            + self.attempts
            + self.idempotency
            + self.sessions
            + self.stats
            + self.stale_entries
            + self.portal_sessions
    }
}

/// Where a pruning pass has got to in the tables it cannot simply empty from the start
/// (because it keeps entries still in use). Start each pass with the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneCursor {
    /// The next attempt id to look at.
    pub(crate) attempts: u128,
    /// The next event id to look at, per application.
    pub(crate) events: HashMap<u128, u128>,
    /// The next verification session id to look at, per application.
    pub(crate) sessions: HashMap<u128, u128>,
}

/// How old is too old, for one pruning pass.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// Events, attempts and ended verification sessions made before this Unix ms go.
    pub history_ms: u64,
    /// Idempotency records stored before this Unix second go.
    pub idempotency_secs: i64,
    /// Now (Unix ms): an event whose undelivered payload is held until later stays.
    pub now_ms: u64,
}

/// What [`QueueWrites::recover_endpoint`](crate::store::QueueWrites::recover_endpoint) found (and, unless it was a dry run, resent).
#[derive(Debug, Default)]
pub struct Recovery {
    /// Events whose delivery to the endpoint had failed for good and are (or would be)
    /// sent again.
    pub events: usize,
    /// More such events are left beyond [`MAX_RECOVER`]: call again.
    pub has_more: bool,
    /// Events that failed for good longer ago than the endpoint keeps undelivered
    /// payloads: not resent.
    pub expired: usize,
    /// The new attempts queued (none on a dry run, or while the endpoint is disabled:
    /// they wait, parked, until it is enabled).
    pub scheduled: Scheduled,
}

/// The most events one recovery resends, so it is one bounded transaction; the next
/// call picks up where it ended (the resent events are no longer failed).
pub const MAX_RECOVER: usize = 10_000;

/// The events (id, type) a recovery resends, and its counts.
pub type Recoverable = (Vec<(EventId, String)>, Recovery);

/// What a recovery resends of an endpoint's deliveries, from the latest attempt of each
/// event (in the order the events were first attempted): those that failed for good,
/// unless the payload kept for resending expired (`hours` after the failure), at most
/// [`MAX_RECOVER`]. The events with their types, and the counts (nothing scheduled yet).
pub fn recoverable(
    latest: impl IntoIterator<Item = (EventId, AttemptStatus, i64, String)>,
    hours: u32,
    now_ms: u64,
) -> Recoverable {
    let mut failed = Vec::new();
    let mut recovery = Recovery::default();
    for (event, status, made, event_type) in latest {
        if status != AttemptStatus::Failed {
            continue;
        }
        if undelivered_expired(status, made, hours, now_ms) {
            recovery.expired += 1;
            continue;
        }
        if failed.len() == MAX_RECOVER {
            recovery.has_more = true;
            break;
        }
        failed.push((event, event_type));
    }
    recovery.events = failed.len();
    (failed, recovery)
}

/// The most pending deliveries counted per endpoint; beyond it the count says "at least".
pub const MAX_PENDING_COUNTED: u64 = 100_000;

/// Succeeded and failed attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Attempts answered 2xx.
    pub succeeded: u64,
    /// Attempts that failed (whether or not a retry followed).
    pub failed: u64,
    /// Events the endpoint's content filter refused (no attempt made).
    pub filtered: u64,
}

/// What the overview shows for one time window.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Outcomes per bucket, by the bucket's start (Unix seconds); empty buckets absent.
    pub buckets: BTreeMap<i64, Outcomes>,
    /// Outcomes in the window per endpoint id.
    pub endpoints: BTreeMap<EndpointId, Outcomes>,
    /// Pending deliveries per endpoint id (counted up to [`MAX_PENDING_COUNTED`]).
    pub pending: BTreeMap<EndpointId, u64>,
    /// The newest failed attempts, newest first.
    pub recent_failures: Vec<AttemptRecord>,
}

/// RedbStore figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Attempts in the queue.
    pub queue_depth: u64,
    /// How long the first queued attempt has been due, in ms (0 if not yet due).
    pub oldest_due_ms: u64,
    /// Enabled endpoints whose latest attempt did not fail, both modes.
    pub healthy_endpoints: u64,
    /// Enabled endpoints whose latest attempts are failing, both modes.
    pub degraded_endpoints: u64,
    /// Disabled endpoints, both modes.
    pub disabled_endpoints: u64,
    /// Bytes the store takes: the data file, or the Postgres database.
    pub store_bytes: u64,
    /// How long the first due entry no process has claimed has been due, in ms (with
    /// redb, where nothing is claimed, [`MetricsSnapshot::oldest_due_ms`]).
    pub claim_lag_ms: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The id of the key the payloads were sealed with.
    pub old_key: String,
    /// The id of the key they are sealed with now.
    pub new_key: String,
    /// Event payloads re-sealed.
    pub payloads: usize,
    /// Attempt response excerpts re-sealed.
    pub responses: usize,
    /// Stored idempotent responses re-sealed.
    pub idempotency: usize,
    /// Endpoints whose signing secrets were re-sealed.
    pub endpoints: usize,
    /// Where the old key was kept.
    pub old_key_file: PathBuf,
}

/// Why a rotation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The data file could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A key is missing, wrong or unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Reading or writing the data file failed (run again to finish).
    #[error("{0} (run `stile rotate-payload-key` again to finish the rotation)")]
    Store(#[from] StoreError),
    /// The key files could not be moved into place.
    #[error("the payloads are sealed with the new key, but {0} could not be moved into place: {1}")]
    Files(PathBuf, #[source] std::io::Error),
}
